/// ELF64 constants used by the object reader, named as in `<elf.h>`.
enum ELF {
    static let headerSize = 64
    static let sectionHeaderSize = 64
    static let symbolSize = 24
    static let relaSize = 24

    // e_ident
    static let classELF64: UInt8 = 2
    static let dataLSB: UInt8 = 1
    static let versionCurrent: UInt8 = 1

    // e_type, e_machine
    static let ET_REL: UInt16 = 1
    static let EM_X86_64: UInt16 = 62
    static let EM_AARCH64: UInt16 = 183

    // Section header types.
    static let SHT_NULL: UInt32 = 0
    static let SHT_PROGBITS: UInt32 = 1
    static let SHT_SYMTAB: UInt32 = 2
    static let SHT_STRTAB: UInt32 = 3
    static let SHT_RELA: UInt32 = 4
    static let SHT_NOBITS: UInt32 = 8
    static let SHT_REL: UInt32 = 9
    static let SHT_DYNSYM: UInt32 = 11
    static let SHT_INIT_ARRAY: UInt32 = 14
    static let SHT_FINI_ARRAY: UInt32 = 15
    static let SHT_PREINIT_ARRAY: UInt32 = 16
    static let SHT_GROUP: UInt32 = 17
    static let SHT_SYMTAB_SHNDX: UInt32 = 18
    static let SHT_X86_64_UNWIND: UInt32 = 0x7000_0001

    // Section header flags.
    static let SHF_WRITE: UInt64 = 0x1
    static let SHF_ALLOC: UInt64 = 0x2
    static let SHF_EXECINSTR: UInt64 = 0x4
    static let SHF_MERGE: UInt64 = 0x10
    static let SHF_STRINGS: UInt64 = 0x20
    static let SHF_GROUP: UInt64 = 0x200
    static let SHF_TLS: UInt64 = 0x400
    static let SHF_COMPRESSED: UInt64 = 0x800
    static let SHF_EXCLUDE: UInt64 = 0x8000_0000

    // Special section indices.
    static let SHN_UNDEF: UInt32 = 0
    static let SHN_LORESERVE: UInt32 = 0xff00
    static let SHN_ABS: UInt32 = 0xfff1
    static let SHN_COMMON: UInt32 = 0xfff2
    static let SHN_XINDEX: UInt32 = 0xffff
    static let SHN_X86_64_LCOMMON: UInt16 = 0xff02

    // Symbol binding and type.
    static let STB_LOCAL: UInt8 = 0
    static let STB_GLOBAL: UInt8 = 1
    static let STB_WEAK: UInt8 = 2
    static let STB_GNU_UNIQUE: UInt8 = 10
    static let STT_NOTYPE: UInt8 = 0
    static let STT_OBJECT: UInt8 = 1
    static let STT_FUNC: UInt8 = 2
    static let STT_SECTION: UInt8 = 3
    static let STT_FILE: UInt8 = 4
    static let STT_COMMON: UInt8 = 5
    static let STT_TLS: UInt8 = 6
    static let STT_GNU_IFUNC: UInt8 = 10

    static let GRP_COMDAT: UInt32 = 1
}
