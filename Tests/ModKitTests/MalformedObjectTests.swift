import Foundation
import ModKit
import Testing

/// Objects damaged byte by byte. Each test starts from a valid object compiled by gcc, patches
/// it, and checks that the load fails with a message naming the file, section and offset at
/// fault, having mapped nothing.
@Suite("malformed objects")
struct MalformedObjectTests {
    static let source = """
        int counter = 1;
        static const char greeting[] = "hello";
        int probe(void) { return counter + greeting[0]; }
        """

    static let SHT_REL: UInt32 = 9
    static let SHF_WRITE: UInt64 = 0x1

    /// Compiles the valid object, applies `patch` to its bytes and loads it, expecting the load
    /// to fail without mapping anything. Returns the path of the patched object and the error.
    private func loadPatched(sourceLocation: SourceLocation = #_sourceLocation,
                             _ patch: (inout ObjectBytes) throws -> Void) async throws -> (path: String, object: ObjectBytes, error: LoadError) {
        let directory = try TemporaryDirectory(prefix: "malformed")
        defer { directory.remove() }
        let path = try await ObjectBuilder.compile(Self.source, name: "patched", in: directory)
        var object = try ObjectBytes(contentsOf: path)
        try patch(&object)
        try object.write(to: path)

        var caught: LoadError?
        try await expectModuleAreaUnchanged(sourceLocation: sourceLocation) {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            caught = try #require(throws: LoadError.self, sourceLocation: sourceLocation) { try host.load(files: [path]) }
            #expect(host.modules.isEmpty, sourceLocation: sourceLocation)
        }
        let error = try #require(caught, sourceLocation: sourceLocation)
        return (path, object, error)
    }

    // MARK: File and header

    @Test("truncated inside the ELF header")
    func truncatedHeader() async throws {
        let (path, _, error) = try await loadPatched { object in
            object.bytes.removeSubrange(40...)
        }

        #expect(error.kind == .truncatedFile)
        #expect(error.description == "\(path): file is truncated: 40 bytes, shorter than an ELF header (64 bytes); rebuild it with cc -c")
    }

    @Test("truncated inside the section table")
    func truncatedSectionTable() async throws {
        var tableOffset = 0, count = 0
        let (path, _, error) = try await loadPatched { object in
            tableOffset = object.sectionTableOffset
            count = object.sectionCount
            object.bytes.removeSubrange((tableOffset + 3 * 64 + 10)...)
        }

        #expect(error.kind == .sectionTableOutOfBounds)
        #expect(error.description == "\(path): section table at offset 0x\(String(tableOffset, radix: 16)) with \(count) entries extends past the end of the file (\(tableOffset + 3 * 64 + 10) bytes)")
    }

    @Test("truncated inside a section's contents")
    func truncatedContents() async throws {
        var text: ObjectBytes.SectionHeader?
        let (path, _, error) = try await loadPatched { object in
            // The section table comes last in the file, so move .text after it to cut the file
            // inside .text and keep the table.
            var header = try object.section(named: ".text")
            let contents = object.bytes[header.offset ..< header.offset + header.size]
            header.offset = object.bytes.count
            object.write(UInt64(header.offset), at: header.headerOffset + ObjectBytes.SectionHeader.offsetField)
            object.bytes += contents
            object.bytes.removeLast(header.size / 2)
            text = header
        }
        let header = try #require(text)

        #expect(error.kind == .sectionOutOfBounds)
        #expect(error.description == "\(path):(.text): section contents at offset 0x\(String(header.offset, radix: 16)) size 0x\(String(header.size, radix: 16)) extend past the end of the file (\(header.offset + header.size - header.size / 2) bytes)")
    }

    @Test("bad magic")
    func badMagic() async throws {
        let (path, _, error) = try await loadPatched { object in
            object.bytes[3] = UInt8(ascii: "G")
        }

        #expect(error.kind == .notELF)
        #expect(error.description == "\(path): not an ELF file (bad magic); expected an object built with cc -c")
    }

    @Test("short text file is not ELF")
    func shortTextFile() async throws {
        let (path, _, error) = try await loadPatched { object in
            object.bytes = Array("just text\n".utf8)
        }

        #expect(error.kind == .notELF)
        #expect(error.description == "\(path): not an ELF file (bad magic); expected an object built with cc -c")
    }

    @Test("empty file")
    func emptyFile() async throws {
        let (path, _, error) = try await loadPatched { object in
            object.bytes = []
        }

        #expect(error.kind == .truncatedFile)
        #expect(error.description == "\(path): file is empty; expected an object built with cc -c")
    }

    @Test("ELFCLASS32")
    func elfClass32() async throws {
        let (path, _, error) = try await loadPatched { object in
            object.bytes[4] = 1
        }

        #expect(error.kind == .unsupportedClass)
        #expect(error.description == "\(path): unsupported ELF class 1; only ELF64 objects can be loaded")
    }

    @Test("big-endian")
    func bigEndian() async throws {
        let (path, _, error) = try await loadPatched { object in
            object.bytes[5] = 2
        }

        #expect(error.kind == .unsupportedByteOrder)
        #expect(error.description == "\(path): unsupported byte order 2; only little-endian objects can be loaded")
    }

    @Test("executable or shared object", arguments: [(UInt16(2), "an executable (ET_EXEC)"), (3, "a shared object or PIE (ET_DYN)")])
    func notRelocatable(type: UInt16, description: String) async throws {
        let (path, _, error) = try await loadPatched { object in
            object.write(type, at: ObjectBytes.typeOffset)
        }

        #expect(error.kind == .notRelocatable)
        #expect(error.description == "\(path): not a relocatable object: the file is \(description); build modules with cc -c")
    }

    @Test("unknown machine")
    func unknownMachine() async throws {
        let EM_386: UInt16 = 3
        let (path, _, error) = try await loadPatched { object in
            object.write(EM_386, at: ObjectBytes.machineOffset)
        }

        #expect(error.kind == .unsupportedMachine)
        #expect(error.description == "\(path): unsupported machine 3 (e_machine); expected x86_64 (62) or aarch64 (183)")
    }

    @Test("machine other than the host's")
    func foreignMachine() async throws {
        let EM_AARCH64: UInt16 = 183
        let (path, _, error) = try await loadPatched { object in
            object.write(EM_AARCH64, at: ObjectBytes.machineOffset)
        }

        #expect(error.kind == .machineMismatch)
        #expect(error.description == "\(path): object is for aarch64, but this process runs on x86_64; rebuild the module for x86_64")
    }

    // MARK: Section table and sections

    @Test("section table outside the file")
    func sectionTableOutOfBounds() async throws {
        var size = 0
        let (path, _, error) = try await loadPatched { object in
            size = object.bytes.count
            object.write(UInt64(size + 0x1000), at: ObjectBytes.sectionTableOffsetOffset)
        }

        #expect(error.kind == .sectionTableOutOfBounds)
        #expect(error.description == "\(path): section table at offset 0x\(String(size + 0x1000, radix: 16)) is outside the file (\(size) bytes)")
    }

    @Test("section offset near UInt64.max")
    func sectionOffsetOverflow() async throws {
        var size = 0
        let (path, _, error) = try await loadPatched { object in
            let text = try object.section(named: ".text")
            size = text.size
            object.write(UInt64.max - 0xf, at: text.headerOffset + ObjectBytes.SectionHeader.offsetField)
        }

        #expect(error.kind == .sectionOutOfBounds)
        #expect(error.description == "\(path):(.text): section offset 0xfffffffffffffff0 or size 0x\(String(size, radix: 16)) is out of range")
    }

    @Test("section offset plus size overflows")
    func sectionEndOverflow() async throws {
        let (path, _, error) = try await loadPatched { object in
            let text = try object.section(named: ".text")
            object.write(UInt64(Int.max - 0xf), at: text.headerOffset + ObjectBytes.SectionHeader.offsetField)
            object.write(UInt64(0x20), at: text.headerOffset + ObjectBytes.SectionHeader.sizeField)
        }

        #expect(error.kind == .sectionOutOfBounds)
        #expect(error.description.hasPrefix("\(path):(.text): section contents at offset 0x7ffffffffffffff0 size 0x20 extend past the end of the file ("))
    }

    @Test("section name table without final NUL")
    func sectionNamesUnterminated() async throws {
        var index = 0
        let (path, _, error) = try await loadPatched { object in
            index = object.sectionNameTableIndex
            let names = object.sectionHeader(index)
            object.bytes[names.offset + names.size - 1] = UInt8(ascii: "x")
        }

        #expect(error.kind == .badStringTable)
        #expect(error.description == "\(path):(section \(index)): section name table does not end with a NUL byte")
    }

    @Test("symbol string table without final NUL")
    func symbolNamesUnterminated() async throws {
        let (path, _, error) = try await loadPatched { object in
            let names = try object.section(named: ".strtab")
            object.bytes[names.offset + names.size - 1] = UInt8(ascii: "x")
        }

        #expect(error.kind == .badStringTable)
        #expect(error.description == "\(path):(.strtab): symbol string table does not end with a NUL byte")
    }

    @Test("section both writable and executable")
    func writableCode() async throws {
        let (path, _, error) = try await loadPatched { object in
            let text = try object.section(named: ".text")
            object.write(text.flags | Self.SHF_WRITE, at: text.headerOffset + ObjectBytes.SectionHeader.flagsField)
        }

        #expect(error.kind == .writableAndExecutable)
        #expect(error.description == "\(path):(.text): section is both writable and executable (SHF_WRITE|SHF_EXECINSTR); modules are mapped W^X")
    }

    @Test("alignment of 3")
    func badAlignment() async throws {
        let (path, _, error) = try await loadPatched { object in
            let text = try object.section(named: ".text")
            object.write(UInt64(3), at: text.headerOffset + ObjectBytes.SectionHeader.alignmentField)
        }

        #expect(error.kind == .badAlignment)
        #expect(error.description == "\(path):(.text): invalid alignment 3 (sh_addralign); it must be 0 or a power of two")
    }

    // MARK: Symbols

    @Test("symbol name offset out of range")
    func symbolNameOutOfRange() async throws {
        var symbol: ObjectBytes.Symbol?, namesSize = 0
        let (path, _, error) = try await loadPatched { object in
            symbol = try object.symbol(named: "probe")
            namesSize = try object.section(named: ".strtab").size
            object.write(UInt32(0xffff), at: symbol!.entryOffset + ObjectBytes.Symbol.nameField)
        }
        let index = try #require(symbol?.index)

        #expect(error.kind == .badName)
        #expect(error.description == "\(path):(.symtab+0x\(String(index * 24, radix: 16))): name offset 65535 of symbol \(index) is outside the symbol string table (\(namesSize) bytes)")
    }

    @Test("symbol section index out of range")
    func symbolSectionOutOfRange() async throws {
        var symbol: ObjectBytes.Symbol?, count = 0
        let (path, _, error) = try await loadPatched { object in
            symbol = try object.symbol(named: "probe")
            count = object.sectionCount
            object.write(UInt16(0x1234), at: symbol!.entryOffset + ObjectBytes.Symbol.sectionIndexField)
        }
        let index = try #require(symbol?.index)

        #expect(error.kind == .sectionIndexOutOfRange)
        #expect(error.description == "\(path):(.symtab+0x\(String(index * 24, radix: 16))): symbol \(index) 'probe' refers to section 4660 (st_shndx), which does not exist (\(count) sections)")
    }

    // MARK: Relocations

    @Test("relocation symbol index out of range")
    func relocationSymbolOutOfRange() async throws {
        var relocation: ObjectBytes.RelocationEntry?, symbolCount = 0
        let (path, _, error) = try await loadPatched { object in
            relocation = try object.relocations(in: ".rela.text").first
            symbolCount = try object.symbols.count
            object.write(UInt64(999) << 32 | UInt64(relocation!.type), at: relocation!.entryOffset + ObjectBytes.RelocationEntry.infoField)
        }
        let offset = try #require(relocation?.offset)

        #expect(error.kind == .symbolIndexOutOfRange)
        #expect(error.description == "\(path):(.text+0x\(String(offset, radix: 16))): relocation 0 in .rela.text refers to symbol 999, but the symbol table has \(symbolCount) entries")
    }

    @Test("relocation offset outside its section")
    func relocationOutsideSection() async throws {
        var textSize = 0
        let (path, _, error) = try await loadPatched { object in
            let relocation = try #require(try object.relocations(in: ".rela.text").first)
            textSize = try object.section(named: ".text").size
            object.write(UInt64(textSize + 0x100), at: relocation.entryOffset)
        }

        #expect(error.kind == .relocationOutOfSection)
        #expect(error.description == "\(path):(.text+0x\(String(textSize + 0x100, radix: 16))): relocation 0 in .rela.text is outside its section (\(textSize) bytes)")
    }

    @Test("relocation field ending past its section")
    func relocationFieldPastSection() async throws {
        var textSize = 0, typeName = ""
        let (path, _, error) = try await loadPatched { object in
            let relocation = try #require(try object.relocations(in: ".rela.text").first)
            typeName = try #require(X86Relocation.numbers.first { $0.value == relocation.type }?.key)
            textSize = try object.section(named: ".text").size
            object.write(UInt64(textSize - 2), at: relocation.entryOffset)
        }

        #expect(error.kind == .relocationOutOfSection)
        #expect(error.description == "\(path):(.text+0x\(String(textSize - 2, radix: 16))): relocation \(typeName) writes 4 bytes past the end of its section (\(textSize) bytes)")
    }

    @Test("relocation section for a nonexistent section")
    func relocationTargetMissing() async throws {
        var count = 0
        let (path, _, error) = try await loadPatched { object in
            let section = try object.section(named: ".rela.text")
            count = object.sectionCount
            object.write(UInt32(999), at: section.headerOffset + ObjectBytes.SectionHeader.infoField)
        }

        #expect(error.kind == .sectionIndexOutOfRange)
        #expect(error.description == "\(path):(.rela.text): relocation section applies to section 999 (sh_info), which does not exist (\(count) sections)")
    }

    @Test("relocation section not linked to the symbol table")
    func relocationLinkNotSymbolTable() async throws {
        var textIndex = 0
        let (path, _, error) = try await loadPatched { object in
            let section = try object.section(named: ".rela.text")
            textIndex = try object.section(named: ".text").index
            object.write(UInt32(textIndex), at: section.headerOffset + ObjectBytes.SectionHeader.linkField)
        }

        #expect(error.kind == .badRelocationSection)
        #expect(error.description == "\(path):(.rela.text): relocation section links to section \(textIndex) (sh_link), which is not the symbol table")
    }

    @Test("SHT_REL section")
    func relSection() async throws {
        let (path, _, error) = try await loadPatched { object in
            let section = try object.section(named: ".rela.text")
            object.write(Self.SHT_REL, at: section.headerOffset + ObjectBytes.SectionHeader.typeField)
        }

        #expect(error.kind == .unsupportedSection)
        #expect(error.description == "\(path):(.rela.text): SHT_REL relocations (without addends) are not supported; x86_64 and aarch64 objects use SHT_RELA")
    }
}
