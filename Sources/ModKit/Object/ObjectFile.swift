/// The target architecture of an object.
public enum Machine: String, Sendable {
    case x86_64
    case aarch64
}

/// One section header of an object, validated against the file.
public struct ObjectSection: Sendable {
    public var index: Int
    public var name: String
    public var type: UInt32
    public var flags: UInt64
    /// File offset of the contents; meaningless for `SHT_NOBITS`.
    public var offset: Int
    public var size: Int
    /// A power of two, at least 1.
    public var alignment: Int
    public var link: UInt32
    public var info: UInt32
    public var entrySize: Int

    public var isAllocated: Bool { flags & ELF.SHF_ALLOC != 0 }
    public var isWritable: Bool { flags & ELF.SHF_WRITE != 0 }
    public var isExecutable: Bool { flags & ELF.SHF_EXECINSTR != 0 }
    public var hasFileContents: Bool { type != ELF.SHT_NOBITS }
}

/// One entry of the symbol table.
public struct ObjectSymbol: Sendable {
    /// Offset of the name in the symbol string table.
    public var nameOffset: Int
    public var binding: UInt8
    public var type: UInt8
    public var visibility: UInt8
    /// The section index, with `SHN_XINDEX` already replaced from `SHT_SYMTAB_SHNDX`.
    public var sectionIndex: UInt32
    public var value: UInt64
    public var size: UInt64

    public var isUndefined: Bool { sectionIndex == ELF.SHN_UNDEF }
    public var isCommon: Bool { sectionIndex == ELF.SHN_COMMON }
    public var isAbsolute: Bool { sectionIndex == ELF.SHN_ABS }
    public var isLocal: Bool { binding == ELF.STB_LOCAL }
    public var isWeak: Bool { binding == ELF.STB_WEAK }
}

/// One `Elf64_Rela` entry.
public struct Relocation: Sendable {
    /// Offset of the relocated field from the start of the target section.
    public var offset: UInt64
    public var type: UInt32
    public var symbolIndex: Int
    public var addend: Int64
}

/// A relocation section and the section it applies to.
public struct RelocationSection: Sendable {
    /// Index of the `SHT_RELA` section itself.
    public var index: Int
    /// Index of the section the relocations patch (`sh_info`).
    public var target: Int
    public var relocations: RelocationList
}

/// The `Elf64_Rela` entries of one section, read in place from the object's bytes, which the
/// parser has already checked entry by entry.
/// Valid while the `ObjectFile` it came from is alive.
public struct RelocationList: RandomAccessCollection, @unchecked Sendable {
    let entries: UnsafeRawPointer
    public let count: Int

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    @inline(__always)
    public subscript(index: Int) -> Relocation {
        precondition(index >= 0 && index < count, "relocation index out of range")
        let entry = entries + index * ELF.relaSize
        let info = UInt64(littleEndian: entry.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        return Relocation(offset: UInt64(littleEndian: entry.loadUnaligned(as: UInt64.self)),
                          type: UInt32(truncatingIfNeeded: info), symbolIndex: Int(info >> 32),
                          addend: Int64(bitPattern: UInt64(littleEndian: entry.loadUnaligned(fromByteOffset: 16, as: UInt64.self))))
    }
}

/// A section group (`SHT_GROUP`), such as a C++ COMDAT for an inline function.
public struct SectionGroup: Sendable {
    public var index: Int
    public var signature: String
    public var isComdat: Bool
    public var members: [Int]
}

/// A validated relocatable object: every index, offset and string in it has been checked, so
/// later stages read it without further bounds checks.
public struct ObjectFile: @unchecked Sendable {
    public let image: ObjectImage
    public var machine: Machine
    public var sections: [ObjectSection]
    public var symbols: [ObjectSymbol]
    /// Index of the `SHT_SYMTAB` section, or nil for an object without symbols.
    public var symbolTableIndex: Int?
    /// File offset and size of the string table that symbol names point into.
    var symbolNames: (offset: Int, size: Int)
    public var relocationSections: [RelocationSection]
    public var groups: [SectionGroup]

    public var name: String { image.name }

    /// The name of symbol `index`; section symbols take their section's name.
    public func symbolName(_ index: Int) -> String {
        let symbol = symbols[index]
        if symbol.type == ELF.STT_SECTION, symbol.nameOffset == 0,
           Int(symbol.sectionIndex) < sections.count {
            return sections[Int(symbol.sectionIndex)].name
        }
        return image.cString(at: symbolNames.offset + symbol.nameOffset)
    }

    /// The bytes of section `index` (empty for `SHT_NOBITS`).
    public func contents(of index: Int) -> UnsafeRawBufferPointer {
        let section = sections[index]
        guard section.hasFileContents else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(rebasing: image.bytes[section.offset ..< section.offset + section.size])
    }

    /// Returns the index of the first section named `name`.
    public func sectionIndex(named name: String) -> Int? {
        sections.firstIndex { $0.name == name }
    }
}
