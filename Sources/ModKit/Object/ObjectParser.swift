/// Parses and validates an ELF64 relocatable object.
///
/// Each check is a small function named after what it establishes. Nothing here maps memory,
/// so an object that fails validation leaves nothing behind.
struct ObjectParser {
    let image: ObjectImage
    private var file: String { image.name }

    init(image: ObjectImage) {
        self.image = image
    }

    func parse() throws(LoadError) -> ObjectFile {
        try checkIdentification()
        let machine = try checkHeader()
        let table = try locateSectionTable()
        var sections = try readSectionHeaders(table)
        try nameSections(&sections, table: table)
        try checkSectionBounds(sections)
        try checkSectionFlags(sections)

        let symbolTableIndex = try findSymbolTable(sections)
        var symbols: [ObjectSymbol] = []
        var symbolNames = (offset: 0, size: 0)
        if let symbolTableIndex {
            symbolNames = try checkSymbolStringTable(sections, symbolTableIndex: symbolTableIndex)
            symbols = try readSymbols(sections, symbolTableIndex: symbolTableIndex, names: symbolNames, machine: machine)
        }
        var object = ObjectFile(image: image, machine: machine, sections: sections, symbols: symbols,
                                symbolTableIndex: symbolTableIndex, symbolNames: symbolNames,
                                relocationSections: [], groups: [])
        try checkThreadLocalStorage(object)
        object.relocationSections = try readRelocationSections(object)
        object.groups = try readGroups(object)
        return object
    }

    // MARK: Header

    private func checkIdentification() throws(LoadError) {
        guard image.count > 0 else {
            throw LoadError(.truncatedFile, file: file, "file is empty; expected an object built with cc -c")
        }
        // The magic is checked first, on the bytes there are, so that a short text file is
        // reported as not ELF rather than as a cut-off object.
        let magic: [UInt8] = [0x7f, 0x45, 0x4c, 0x46]
        guard (0 ..< min(image.count, magic.count)).allSatisfy({ image.u8($0) == magic[$0] }) else {
            throw LoadError(.notELF, file: file, "not an ELF file (bad magic); expected an object built with cc -c")
        }
        guard image.count >= ELF.headerSize else {
            throw LoadError(.truncatedFile, file: file,
                            "file is truncated: \(image.count) bytes, shorter than an ELF header (64 bytes); rebuild it with cc -c")
        }
        guard image.u8(4) == ELF.classELF64 else {
            throw LoadError(.unsupportedClass, file: file,
                            "unsupported ELF class \(image.u8(4)); only ELF64 objects can be loaded")
        }
        guard image.u8(5) == ELF.dataLSB else {
            throw LoadError(.unsupportedByteOrder, file: file,
                            "unsupported byte order \(image.u8(5)); only little-endian objects can be loaded")
        }
        guard image.u8(6) == ELF.versionCurrent, image.u32(20) == 1 else {
            throw LoadError(.unsupportedVersion, file: file, "unsupported ELF version \(image.u8(6))")
        }
    }

    private func checkHeader() throws(LoadError) -> Machine {
        let type = image.u16(16)
        guard type == ELF.ET_REL else {
            let kind = [2: "an executable (ET_EXEC)", 3: "a shared object or PIE (ET_DYN)", 4: "a core file (ET_CORE)"][Int(type)]
                ?? "of type \(type)"
            throw LoadError(.notRelocatable, file: file,
                            "not a relocatable object: the file is \(kind); build modules with cc -c")
        }
        let machine: Machine
        switch image.u16(18) {
        case ELF.EM_X86_64: machine = .x86_64
        case ELF.EM_AARCH64: machine = .aarch64
        case let other:
            throw LoadError(.unsupportedMachine, file: file,
                            "unsupported machine \(other) (e_machine); expected x86_64 (62) or aarch64 (183)")
        }
        let headerSize = image.u16(52)
        guard headerSize == ELF.headerSize else {
            throw LoadError(.badHeader, file: file, "invalid e_ehsize \(headerSize); expected 64")
        }
        return machine
    }

    private struct SectionTable {
        var offset: Int
        var count: Int
        var stringTableIndex: Int
    }

    private func locateSectionTable() throws(LoadError) -> SectionTable {
        let offset = image.u64(40)
        var count = Int(image.u16(60))
        var stringTableIndex = UInt32(image.u16(62))
        let entrySize = Int(image.u16(58))

        guard offset != 0 else {
            throw LoadError(.badHeader, file: file, "object has no section table (e_shoff is 0)")
        }
        guard entrySize == ELF.sectionHeaderSize else {
            throw LoadError(.badHeader, file: file, "invalid e_shentsize \(entrySize); expected 64")
        }
        guard offset <= UInt64(image.count), image.contains(offset: Int(offset), size: ELF.sectionHeaderSize) else {
            throw LoadError(.sectionTableOutOfBounds, file: file,
                            "section table at offset 0x\(String(offset, radix: 16)) is outside the file (\(image.count) bytes)")
        }
        // Extended numbering: with 0 or SHN_XINDEX in the header, section 0 holds the real values.
        if count == 0 { count = Int(clamping: image.u64(Int(offset) + 32)) }
        if stringTableIndex == ELF.SHN_XINDEX { stringTableIndex = image.u32(Int(offset) + 40) }

        let (tableSize, overflow) = count.multipliedReportingOverflow(by: ELF.sectionHeaderSize)
        guard !overflow, image.contains(offset: Int(offset), size: tableSize) else {
            throw LoadError(.sectionTableOutOfBounds, file: file,
                            "section table at offset 0x\(String(offset, radix: 16)) with \(count) entries extends past the end of the file (\(image.count) bytes)")
        }
        guard Int(stringTableIndex) < count, stringTableIndex != 0 else {
            throw LoadError(.sectionIndexOutOfRange, file: file,
                            "section name table index \(stringTableIndex) (e_shstrndx) is out of range (\(count) sections)")
        }
        return SectionTable(offset: Int(offset), count: count, stringTableIndex: Int(stringTableIndex))
    }

    // MARK: Sections

    private func readSectionHeaders(_ table: SectionTable) throws(LoadError) -> [ObjectSection] {
        var sections: [ObjectSection] = []
        sections.reserveCapacity(table.count)
        for index in 0 ..< table.count {
            let at = table.offset + index * ELF.sectionHeaderSize
            let rawAlignment = image.u64(at + 48)
            guard rawAlignment <= 1 << 30, rawAlignment & (rawAlignment &- 1) == 0 else {
                throw LoadError(.badAlignment, file: file, section: provisionalName(ofSection: index, in: table),
                                "invalid alignment \(rawAlignment) (sh_addralign); it must be 0 or a power of two")
            }
            let offset = image.u64(at + 24), size = image.u64(at + 32)
            guard offset <= UInt64(Int.max), size <= UInt64(Int.max) else {
                throw LoadError(.sectionOutOfBounds, file: file, section: provisionalName(ofSection: index, in: table),
                                "section offset 0x\(String(offset, radix: 16)) or size 0x\(String(size, radix: 16)) is out of range")
            }
            sections.append(ObjectSection(
                index: index, name: "", type: image.u32(at + 4), flags: image.u64(at + 8),
                offset: Int(offset), size: Int(size), alignment: max(Int(rawAlignment), 1),
                link: image.u32(at + 40), info: image.u32(at + 44), entrySize: Int(clamping: image.u64(at + 56))))
        }
        return sections
    }

    /// Returns the name of section `index` for an error found before the sections are named, or
    /// "section N" when the section name table cannot be read safely yet.
    private func provisionalName(ofSection index: Int, in table: SectionTable) -> String {
        let namesHeader = table.offset + table.stringTableIndex * ELF.sectionHeaderSize
        let namesOffset = image.u64(namesHeader + 24), namesSize = image.u64(namesHeader + 32)
        let nameOffset = UInt64(image.u32(table.offset + index * ELF.sectionHeaderSize))
        guard namesOffset <= UInt64(image.count), namesSize <= UInt64(image.count) - namesOffset, nameOffset < namesSize else {
            return "section \(index)"
        }
        let start = Int(namesOffset + nameOffset), end = Int(namesOffset + namesSize)
        guard let terminator = image.bytes[start ..< end].firstIndex(of: 0), terminator > start else { return "section \(index)" }
        return String(decoding: image.bytes[start ..< terminator], as: UTF8.self)
    }

    private func nameSections(_ sections: inout [ObjectSection], table: SectionTable) throws(LoadError) {
        let names = sections[table.stringTableIndex]
        try checkStringTable(names, role: "section name table")
        for index in sections.indices {
            let nameOffset = Int(image.u32(table.offset + index * ELF.sectionHeaderSize))
            guard nameOffset < names.size else {
                throw LoadError(.badName, file: file, section: "section \(index)",
                                "section name offset \(nameOffset) is outside the section name table (\(names.size) bytes)")
            }
            sections[index].name = image.cString(at: names.offset + nameOffset)
        }
    }

    /// Establishes that a string table lies in the file and ends with NUL, so every name in it
    /// is terminated.
    private func checkStringTable(_ section: ObjectSection, role: String) throws(LoadError) {
        guard section.type == ELF.SHT_STRTAB else {
            throw LoadError(.badStringTable, file: file, section: section.name.isEmpty ? "section \(section.index)" : section.name,
                            "\(role) (section \(section.index)) has type \(section.type); expected SHT_STRTAB")
        }
        guard image.contains(offset: section.offset, size: section.size) else {
            throw LoadError(.sectionOutOfBounds, file: file, section: "section \(section.index)",
                            "\(role) at offset 0x\(String(section.offset, radix: 16)) size 0x\(String(section.size, radix: 16)) extends past the end of the file (\(image.count) bytes)")
        }
        guard section.size > 0, image.u8(section.offset + section.size - 1) == 0 else {
            throw LoadError(.badStringTable, file: file, section: section.name.isEmpty ? "section \(section.index)" : section.name,
                            "\(role) does not end with a NUL byte")
        }
    }

    private func checkSectionBounds(_ sections: [ObjectSection]) throws(LoadError) {
        for section in sections where section.hasFileContents && section.type != ELF.SHT_NULL {
            let (end, overflow) = section.offset.addingReportingOverflow(section.size)
            guard !overflow, end <= image.count else {
                throw LoadError(.sectionOutOfBounds, file: file, section: section.name,
                                "section contents at offset 0x\(String(section.offset, radix: 16)) size 0x\(String(section.size, radix: 16)) extend past the end of the file (\(image.count) bytes)")
            }
        }
        // The file bounds the other sections. An SHT_NOBITS size is bounded here, so that the
        // layout can add sizes without overflow, because a module spans less than 2 GiB.
        for section in sections where section.isAllocated && !section.hasFileContents {
            guard section.size < Int(Int32.max) else {
                throw LoadError(.outOfAddressSpace, file: file, section: section.name,
                                "SHT_NOBITS section of 0x\(String(section.size, radix: 16)) bytes: a module with it needs at least \(section.size >> 20) MiB, more than fits within 32-bit reach of itself (2 GiB)")
            }
        }
    }

    private func checkSectionFlags(_ sections: [ObjectSection]) throws(LoadError) {
        for section in sections where section.isAllocated {
            // An SHT_NULL header is inactive: its offset and size describe nothing in the file,
            // so checkSectionBounds does not check them, and it must not be loaded.
            if section.type == ELF.SHT_NULL {
                throw LoadError(.unsupportedSection, file: file, section: section.name.isEmpty ? "section \(section.index)" : section.name,
                                "section \(section.index) has type SHT_NULL but is allocated (SHF_ALLOC); an inactive section cannot be loaded")
            }
            if section.isWritable && section.isExecutable {
                throw LoadError(.writableAndExecutable, file: file, section: section.name,
                                "section is both writable and executable (SHF_WRITE|SHF_EXECINSTR); modules are mapped W^X")
            }
            if section.flags & ELF.SHF_COMPRESSED != 0 {
                throw LoadError(.unsupportedSection, file: file, section: section.name,
                                "compressed allocated section (SHF_COMPRESSED) is not supported")
            }
        }
    }

    // MARK: Symbols

    private func findSymbolTable(_ sections: [ObjectSection]) throws(LoadError) -> Int? {
        let tables = sections.filter { $0.type == ELF.SHT_SYMTAB }
        guard tables.count <= 1 else {
            throw LoadError(.badSymbolTable, file: file, section: tables[1].name,
                            "object has \(tables.count) symbol tables; expected at most one")
        }
        return tables.first?.index
    }

    private func checkSymbolStringTable(_ sections: [ObjectSection], symbolTableIndex: Int) throws(LoadError) -> (offset: Int, size: Int) {
        let table = sections[symbolTableIndex]
        guard table.entrySize == ELF.symbolSize, table.size % ELF.symbolSize == 0 else {
            throw LoadError(.badSymbolTable, file: file, section: table.name,
                            "symbol table entry size \(table.entrySize) or size \(table.size) is invalid; expected a multiple of 24")
        }
        guard Int(table.link) < sections.count, table.link != 0 else {
            throw LoadError(.sectionIndexOutOfRange, file: file, section: table.name,
                            "symbol table links to string table \(table.link) (sh_link), which does not exist")
        }
        let names = sections[Int(table.link)]
        try checkStringTable(names, role: "symbol string table")
        return (names.offset, names.size)
    }

    private func readSymbols(_ sections: [ObjectSection], symbolTableIndex: Int,
                             names: (offset: Int, size: Int), machine: Machine) throws(LoadError) -> [ObjectSymbol] {
        let table = sections[symbolTableIndex]
        let count = table.size / ELF.symbolSize
        let extendedIndices = try findExtendedIndexTable(sections, symbolTableIndex: symbolTableIndex, symbolCount: count)

        var symbols: [ObjectSymbol] = []
        symbols.reserveCapacity(count)
        for index in 0 ..< count {
            let at = table.offset + index * ELF.symbolSize
            let nameOffset = Int(image.u32(at))
            let info = image.u8(at + 4)
            var sectionIndex = UInt32(image.u16(at + 6))
            guard nameOffset < names.size else {
                throw LoadError(.badName, file: file, section: table.name, offset: UInt64(index * ELF.symbolSize),
                                "name offset \(nameOffset) of symbol \(index) is outside the symbol string table (\(names.size) bytes)")
            }
            // Globals are merged, exported and looked up by their names as strings, which must
            // therefore name them exactly.
            guard info >> 4 == ELF.STB_LOCAL || image.isUTF8CString(at: names.offset + nameOffset) else {
                throw LoadError(.badName, file: file, section: table.name, offset: UInt64(index * ELF.symbolSize),
                                "name of global symbol \(index) '\(image.cString(at: names.offset + nameOffset))' is not valid UTF-8")
            }
            if sectionIndex == ELF.SHN_XINDEX {
                guard let extendedIndices else {
                    throw LoadError(.badSymbolTable, file: file, section: table.name, offset: UInt64(index * ELF.symbolSize),
                                    "symbol \(index) uses SHN_XINDEX but the object has no SHT_SYMTAB_SHNDX section")
                }
                sectionIndex = image.u32(extendedIndices + index * 4)
            }
            // gcc's medium code model puts COMMON symbols above the large data threshold in
            // SHN_X86_64_LCOMMON. A module has no small data area, so they are ordinary COMMONs.
            if machine == .x86_64, image.u16(at + 6) == ELF.SHN_X86_64_LCOMMON {
                sectionIndex = ELF.SHN_COMMON
            }
            let isSpecial = sectionIndex == ELF.SHN_UNDEF || sectionIndex == ELF.SHN_ABS || sectionIndex == ELF.SHN_COMMON
            guard isSpecial || (sectionIndex < ELF.SHN_LORESERVE || image.u16(at + 6) == UInt16(ELF.SHN_XINDEX))
                    && Int(sectionIndex) < sections.count else {
                throw LoadError(.sectionIndexOutOfRange, file: file, section: table.name, offset: UInt64(index * ELF.symbolSize),
                                symbol: image.cString(at: names.offset + nameOffset),
                                "symbol \(index) '\(image.cString(at: names.offset + nameOffset))' refers to section \(sectionIndex) (st_shndx), which does not exist (\(sections.count) sections)")
            }
            symbols.append(ObjectSymbol(
                nameOffset: nameOffset, binding: info >> 4, type: info & 0xf, visibility: image.u8(at + 5) & 3,
                sectionIndex: sectionIndex, value: image.u64(at + 8), size: image.u64(at + 16)))
        }
        return symbols
    }

    private func findExtendedIndexTable(_ sections: [ObjectSection], symbolTableIndex: Int, symbolCount: Int) throws(LoadError) -> Int? {
        guard let table = sections.first(where: { $0.type == ELF.SHT_SYMTAB_SHNDX && Int($0.link) == symbolTableIndex }) else {
            return nil
        }
        guard table.size >= symbolCount * 4 else {
            throw LoadError(.badSymbolTable, file: file, section: table.name,
                            "SHT_SYMTAB_SHNDX section has \(table.size / 4) entries for \(symbolCount) symbols")
        }
        return table.offset
    }

    /// Rejects thread-local storage, naming the variable, because modules get no TLS block.
    private func checkThreadLocalStorage(_ object: ObjectFile) throws(LoadError) {
        for (index, symbol) in object.symbols.enumerated() where symbol.type == ELF.STT_TLS && !symbol.isUndefined {
            let name = object.symbolName(index)
            throw LoadError(.tlsNotSupported, file: file, section: object.sections[Int(min(symbol.sectionIndex, UInt32(object.sections.count - 1)))].name,
                            symbol: name,
                            "thread-local variable '\(name)' is not supported in modules; use a per-thread structure from the host instead of __thread")
        }
        for section in object.sections where section.isAllocated && section.flags & ELF.SHF_TLS != 0 && section.size > 0 {
            throw LoadError(.tlsNotSupported, file: file, section: section.name,
                            "thread-local section is not supported in modules; remove __thread variables")
        }
    }

    // MARK: Relocations

    private func readRelocationSections(_ object: ObjectFile) throws(LoadError) -> [RelocationSection] {
        var result: [RelocationSection] = []
        for section in object.sections {
            if section.type == ELF.SHT_REL {
                throw LoadError(.unsupportedSection, file: file, section: section.name,
                                "SHT_REL relocations (without addends) are not supported; x86_64 and aarch64 objects use SHT_RELA")
            }
            guard section.type == ELF.SHT_RELA else { continue }
            result.append(try readRelocations(section, object: object))
        }
        return result
    }

    private func readRelocations(_ section: ObjectSection, object: ObjectFile) throws(LoadError) -> RelocationSection {
        guard section.entrySize == ELF.relaSize, section.size % ELF.relaSize == 0 else {
            throw LoadError(.badRelocationSection, file: file, section: section.name,
                            "relocation entry size \(section.entrySize) or size \(section.size) is invalid; expected a multiple of 24")
        }
        guard let symbolTableIndex = object.symbolTableIndex, Int(section.link) == symbolTableIndex else {
            throw LoadError(.badRelocationSection, file: file, section: section.name,
                            "relocation section links to section \(section.link) (sh_link), which is not the symbol table")
        }
        let target = Int(section.info)
        guard target > 0, target < object.sections.count else {
            throw LoadError(.sectionIndexOutOfRange, file: file, section: section.name,
                            "relocation section applies to section \(section.info) (sh_info), which does not exist (\(object.sections.count) sections)")
        }
        let targetSection = object.sections[target]
        let count = section.size / ELF.relaSize
        for index in 0 ..< count {
            let at = section.offset + index * ELF.relaSize
            let offset = image.u64(at)
            let info = image.u64(at + 8)
            let symbolIndex = Int(info >> 32)
            guard symbolIndex < object.symbols.count else {
                throw LoadError(.symbolIndexOutOfRange, file: file, section: targetSection.name, offset: offset,
                                "relocation \(index) in \(section.name) refers to symbol \(symbolIndex), but the symbol table has \(object.symbols.count) entries")
            }
            guard offset < UInt64(targetSection.size) else {
                throw LoadError(.relocationOutOfSection, file: file, section: targetSection.name, offset: offset,
                                "relocation \(index) in \(section.name) is outside its section (\(targetSection.size) bytes)")
            }
        }
        return RelocationSection(index: section.index, target: target,
                                 relocations: RelocationList(entries: UnsafeRawPointer(image.base + section.offset), count: count))
    }

    // MARK: Groups

    private func readGroups(_ object: ObjectFile) throws(LoadError) -> [SectionGroup] {
        var groups: [SectionGroup] = []
        for section in object.sections where section.type == ELF.SHT_GROUP {
            guard section.size >= 4, section.size % 4 == 0, let symbolTableIndex = object.symbolTableIndex,
                  Int(section.link) == symbolTableIndex else {
                throw LoadError(.unsupportedSection, file: file, section: section.name,
                                "section group has size \(section.size) or links to section \(section.link); expected 4-byte entries and the symbol table")
            }
            guard Int(section.info) < object.symbols.count else {
                throw LoadError(.symbolIndexOutOfRange, file: file, section: section.name,
                                "section group signature is symbol \(section.info), but the symbol table has \(object.symbols.count) entries")
            }
            var members: [Int] = []
            for entry in stride(from: 4, to: section.size, by: 4) {
                let member = Int(image.u32(section.offset + entry))
                guard member > 0, member < object.sections.count else {
                    throw LoadError(.sectionIndexOutOfRange, file: file, section: section.name, offset: UInt64(entry),
                                    "section group member \(member) does not exist (\(object.sections.count) sections)")
                }
                members.append(member)
            }
            groups.append(SectionGroup(index: section.index, signature: object.symbolName(Int(section.info)),
                                       isComdat: image.u32(section.offset) & ELF.GRP_COMDAT != 0, members: members))
        }
        return groups
    }
}

extension ObjectFile {
    /// Parses and validates `image`.
    public init(_ image: ObjectImage) throws(LoadError) {
        self = try ObjectParser(image: image).parse()
    }
}
