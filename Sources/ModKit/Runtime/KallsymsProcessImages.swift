import CModKit
import Glibc
import Synchronization

/// The symbol tables of the executable and the shared libraries of the process, read from
/// their files and rebuilt whenever the dynamic linker loads or unloads a library.
enum KallsymsProcessImages {
    private struct Cache {
        var adds: UInt64 = 0
        var subs: UInt64 = 0
        var isValid = false
        /// Sorted by start address.
        var tables: [KallsymsTable] = []
    }

    private static let cache = Mutex(Cache())

    /// The current tables, sorted by start address. Reads the files again only when the set
    /// of loaded libraries changed since the last call.
    static func tables() -> [KallsymsTable] {
        var adds: UInt64 = 0, subs: UInt64 = 0
        let hasGeneration = modkit_library_generation(&adds, &subs) == 0
        let cached: [KallsymsTable]? = cache.withLock { cache in
            guard hasGeneration, cache.isValid, cache.adds == adds, cache.subs == subs else { return nil }
            return cache.tables
        }
        if let cached { return cached }

        let tables = readLoadedObjects().sorted { $0.start < $1.start }
        cache.withLock { cache in
            cache = Cache(adds: adds, subs: subs, isValid: hasGeneration, tables: tables)
        }
        return tables
    }

    /// Reads the symbol table of every loaded object whose file can be read. The vDSO has no
    /// file and is left out.
    private static func readLoadedObjects() -> [KallsymsTable] {
        var objects = [modkit_loaded_object](repeating: modkit_loaded_object(), count: 64)
        var count = modkit_loaded_objects(&objects, objects.count)
        while count > objects.count {
            objects = [modkit_loaded_object](repeating: modkit_loaded_object(), count: count * 2)
            count = modkit_loaded_objects(&objects, objects.count)
        }

        var tables: [KallsymsTable] = []
        for (position, object) in objects.prefix(count).enumerated() {
            var path = object.name.map { String(cString: $0) } ?? ""
            let kind: KallsymsOwnerKind
            if position == 0 && path.isEmpty {
                kind = .executable
                path = "/proc/self/exe"
            } else {
                kind = .library
            }
            guard !path.isEmpty else { continue }
            let ownerName = kind == .executable ? executableName() : baseName(path)
            var builder = KallsymsTable.Builder()
            guard ELFSymbolFile.read(path: path, bias: object.base, into: &builder) else { continue }
            tables.append(KallsymsTable(ownerName: ownerName, kind: kind, start: object.start, end: object.end, builder: builder))
        }
        return tables
    }

    private static func executableName() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return "" }
        return baseName(String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    private static func baseName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}

/// Reads the symbols of a linked ELF file (an executable or a shared library) from disk:
/// `.symtab` when the file has one, else `.dynsym`.
enum ELFSymbolFile {
    private static let sectionHeaderSize = 64
    private static let symbolSize = 24
    private static let SHN_LORESERVE: UInt16 = 0xff00

    /// Adds the file's symbols, moved by `bias`, to `builder`. Returns false when the file
    /// cannot be read or is not a 64-bit little-endian ELF file.
    static func read(path: String, bias: UInt64, into builder: inout KallsymsTable.Builder) -> Bool {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_size > 64 else { return false }
        let size = Int(status.st_size)
        guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), mapping != MAP_FAILED else { return false }
        defer { munmap(mapping, size) }
        return read(UnsafeRawBufferPointer(start: mapping, count: size), bias: bias, into: &builder)
    }

    private struct Section {
        var type: UInt32
        var flags: UInt64
        var offset: Int
        var size: Int
        var link: Int
    }

    private static func read(_ file: UnsafeRawBufferPointer, bias: UInt64, into builder: inout KallsymsTable.Builder) -> Bool {
        let magic: [UInt8] = [0x7f, UInt8(ascii: "E"), UInt8(ascii: "L"), UInt8(ascii: "F")]
        guard file.count >= 64, Array(file[0 ..< 4]) == magic,
              file[4] == 2, // ELFCLASS64
              file[5] == 1 // ELFDATA2LSB
        else { return false }

        let sectionTableOffset = Int(load(UInt64.self, file, 40))
        let entrySize = Int(load(UInt16.self, file, 58))
        let sectionCount = Int(load(UInt16.self, file, 60))
        guard entrySize == sectionHeaderSize, sectionTableOffset > 0,
              sectionTableOffset <= file.count, sectionCount <= (file.count - sectionTableOffset) / sectionHeaderSize
        else { return false }

        var sections: [Section] = []
        for index in 0 ..< sectionCount {
            let header = sectionTableOffset + index * sectionHeaderSize
            sections.append(Section(type: load(UInt32.self, file, header + 4), flags: load(UInt64.self, file, header + 8),
                                    offset: Int(truncatingIfNeeded: load(UInt64.self, file, header + 24)),
                                    size: Int(truncatingIfNeeded: load(UInt64.self, file, header + 32)),
                                    link: Int(load(UInt32.self, file, header + 40))))
        }
        guard let table = sections.first(where: { $0.type == ELF.SHT_SYMTAB }) ?? sections.first(where: { $0.type == ELF.SHT_DYNSYM }),
              contains(file, table), table.link < sections.count, contains(file, sections[table.link])
        else { return false }
        let strings = sections[table.link]

        for index in 1 ..< max(table.size / symbolSize, 1) {
            let symbol = table.offset + index * symbolSize
            let nameOffset = Int(load(UInt32.self, file, symbol))
            let info = file[symbol + 4]
            let sectionIndex = load(UInt16.self, file, symbol + 6)
            let value = load(UInt64.self, file, symbol + 8)
            let size = load(UInt64.self, file, symbol + 16)

            let type = info & 0xf
            let binding = info >> 4
            // Sections, files and thread-local variables (whose value is an offset) have no
            // address to look up.
            guard type != ELF.STT_SECTION, type != ELF.STT_FILE, type != ELF.STT_TLS,
                  sectionIndex != 0, sectionIndex < SHN_LORESERVE, Int(sectionIndex) < sections.count,
                  nameOffset < strings.size
            else { continue }
            let section = sections[Int(sectionIndex)]
            guard let letter = KallsymsTypeLetter.of(flags: section.flags, isNoBits: section.type == ELF.SHT_NOBITS,
                                                     isGlobal: binding != ELF.STB_LOCAL)
            else { continue }

            let nameStart = strings.offset + nameOffset
            let nameBytes = UnsafeRawBufferPointer(rebasing: file[nameStart ..< strings.offset + strings.size])
            guard let length = nameBytes.firstIndex(of: 0) else { continue }
            let name = UnsafeBufferPointer(start: nameBytes.baseAddress!.assumingMemoryBound(to: UInt8.self), count: length)
            guard KallsymsTypeLetter.isListed(name) else { continue }
            builder.add(name: name, address: bias &+ value, size: size, type: letter, isInit: false)
        }
        return true
    }

    private static func contains(_ file: UnsafeRawBufferPointer, _ section: Section) -> Bool {
        section.offset >= 0 && section.size >= 0 && section.offset <= file.count && section.size <= file.count - section.offset
    }

    private static func load<T: FixedWidthInteger>(_ type: T.Type, _ file: UnsafeRawBufferPointer, _ offset: Int) -> T {
        T(littleEndian: file.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

/// The `nm` letter for a symbol, from the section it is defined in.
enum KallsymsTypeLetter {
    /// `t` for code, `b` for zero-initialized data, `d` for writable data and `r` for
    /// read-only data, upper case for a global; nil for a section that is not loaded.
    static func of(flags: UInt64, isNoBits: Bool, isGlobal: Bool) -> UInt8? {
        guard flags & ELF.SHF_ALLOC != 0 else { return nil }
        let letter: Character
        if flags & ELF.SHF_EXECINSTR != 0 {
            letter = "t"
        } else if isNoBits {
            letter = "b"
        } else if flags & ELF.SHF_WRITE != 0 {
            letter = "d"
        } else {
            letter = "r"
        }
        let value = letter.asciiValue!
        return isGlobal ? value - 0x20 : value
    }

    /// Whether a symbol named `name` belongs in kallsyms: compiler-local labels (`.L…`) and
    /// the ARM mapping symbols (`$x`, `$d`, `$a`, `$t`, optionally followed by `.suffix`) do
    /// not. Swift's mangled names (`$s…`) do.
    static func isListed(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let first = name.first else { return false }
        if name.count >= 2, first == UInt8(ascii: "."), name[1] == UInt8(ascii: "L") { return false }
        if name.count >= 2, first == UInt8(ascii: "$"), "xdat".utf8.contains(name[1]),
           name.count == 2 || name[2] == UInt8(ascii: ".") {
            return false
        }
        return true
    }
}
