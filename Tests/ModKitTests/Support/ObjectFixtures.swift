import Foundation
import ModKit
import Synchronization
import Testing

/// A fixture that could not be built or does not have the expected shape.
struct FixtureError: Error, CustomStringConvertible {
    var description: String
}

// MARK: - ELF object bytes

/// The bytes of an ELF64 little-endian relocatable object, with lookups of the structures that
/// tests read or patch: the section header table, section headers, symbols and relocation
/// entries. Every offset is a file offset. Lookups assume a well-formed object, so patch only
/// after the lookups a test needs.
struct ObjectBytes {
    var bytes: [UInt8]

    init(contentsOf path: String) throws {
        bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func write(to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func read<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var value = T.zero
        for index in 0 ..< MemoryLayout<T>.size {
            value |= T(truncatingIfNeeded: bytes[offset + index]) << (8 * index)
        }
        return value
    }

    /// Stores `value` little-endian at `offset`.
    mutating func write<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        for index in 0 ..< MemoryLayout<T>.size {
            bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index))
        }
    }

    // MARK: ELF header (Elf64_Ehdr)

    static let typeOffset = 16
    static let machineOffset = 18
    static let sectionTableOffsetOffset = 40
    static let sectionCountOffset = 60
    static let sectionNameTableIndexOffset = 62

    var sectionTableOffset: Int { Int(read(UInt64.self, at: Self.sectionTableOffsetOffset)) }
    var sectionCount: Int { Int(read(UInt16.self, at: Self.sectionCountOffset)) }
    var sectionNameTableIndex: Int { Int(read(UInt16.self, at: Self.sectionNameTableIndexOffset)) }

    // MARK: Section headers (Elf64_Shdr)

    struct SectionHeader {
        var index: Int
        /// File offset of the header itself; add a field offset below to patch a field.
        var headerOffset: Int
        var name: String
        var type: UInt32
        var flags: UInt64
        var offset: Int
        var size: Int
        var link: UInt32
        var info: UInt32
        var entrySize: Int

        static let nameField = 0
        static let typeField = 4
        static let flagsField = 8
        static let offsetField = 24
        static let sizeField = 32
        static let linkField = 40
        static let infoField = 44
        static let alignmentField = 48
    }

    func sectionHeader(_ index: Int) -> SectionHeader {
        let at = sectionTableOffset + index * 64
        let names = sectionNameTableIndex
        let namesOffset = Int(read(UInt64.self, at: sectionTableOffset + names * 64 + SectionHeader.offsetField))
        return SectionHeader(
            index: index, headerOffset: at,
            name: cString(at: namesOffset + Int(read(UInt32.self, at: at))),
            type: read(UInt32.self, at: at + SectionHeader.typeField),
            flags: read(UInt64.self, at: at + SectionHeader.flagsField),
            offset: Int(read(UInt64.self, at: at + SectionHeader.offsetField)),
            size: Int(read(UInt64.self, at: at + SectionHeader.sizeField)),
            link: read(UInt32.self, at: at + SectionHeader.linkField),
            info: read(UInt32.self, at: at + SectionHeader.infoField),
            entrySize: Int(read(UInt64.self, at: at + 56)))
    }

    var sections: [SectionHeader] { (0 ..< sectionCount).map(sectionHeader) }

    func section(named name: String) throws -> SectionHeader {
        guard let section = sections.first(where: { $0.name == name }) else {
            throw FixtureError(description: "fixture has no section \(name); it has \(sections.map(\.name))")
        }
        return section
    }

    // MARK: Symbols (Elf64_Sym)

    struct Symbol {
        var index: Int
        /// File offset of the symbol table entry.
        var entryOffset: Int
        var name: String
        var sectionIndex: UInt16
        var value: UInt64
        var size: UInt64

        static let nameField = 0
        static let sectionIndexField = 6
    }

    var symbolTable: SectionHeader {
        get throws {
            guard let table = sections.first(where: { $0.type == 2 }) else {
                throw FixtureError(description: "fixture has no symbol table (SHT_SYMTAB)")
            }
            return table
        }
    }

    var symbols: [Symbol] {
        get throws {
            let table = try symbolTable
            let names = sectionHeader(Int(table.link))
            return (0 ..< table.size / 24).map { index in
                let at = table.offset + index * 24
                return Symbol(index: index, entryOffset: at, name: cString(at: names.offset + Int(read(UInt32.self, at: at))),
                              sectionIndex: read(UInt16.self, at: at + 6), value: read(UInt64.self, at: at + 8),
                              size: read(UInt64.self, at: at + 16))
            }
        }
    }

    func symbol(named name: String) throws -> Symbol {
        guard let symbol = try symbols.first(where: { $0.name == name }) else {
            throw FixtureError(description: "fixture has no symbol \(name)")
        }
        return symbol
    }

    // MARK: Relocations (Elf64_Rela)

    struct RelocationEntry {
        var index: Int
        /// File offset of the entry.
        var entryOffset: Int
        /// Offset of the relocated field in the target section.
        var offset: UInt64
        var type: UInt32
        var symbolIndex: Int
        var addend: Int64

        static let infoField = 8
    }

    /// Returns the entries of the `SHT_RELA` section `sectionName`, such as `.rela.text`.
    func relocations(in sectionName: String) throws -> [RelocationEntry] {
        let section = try section(named: sectionName)
        return relocations(of: section)
    }

    private func relocations(of section: SectionHeader) -> [RelocationEntry] {
        (0 ..< section.size / 24).map { index in
            let at = section.offset + index * 24
            let info = read(UInt64.self, at: at + 8)
            return RelocationEntry(index: index, entryOffset: at, offset: read(UInt64.self, at: at),
                                   type: UInt32(truncatingIfNeeded: info), symbolIndex: Int(info >> 32),
                                   addend: Int64(bitPattern: read(UInt64.self, at: at + 16)))
        }
    }

    /// Every relocation type used anywhere in the object.
    var relocationTypes: Set<UInt32> {
        Set(sections.filter { $0.type == 4 }.flatMap { relocations(of: $0).map(\.type) })
    }

    private func cString(at offset: Int) -> String {
        guard offset < bytes.count, let end = bytes[offset...].firstIndex(of: 0) else { return "" }
        return String(decoding: bytes[offset ..< end], as: UTF8.self)
    }
}

// MARK: - Relocation type names

/// The x86_64 relocation types the tests use, by their psABI names.
enum X86Relocation {
    static let numbers: [String: UInt32] = [
        "R_X86_64_NONE": 0, "R_X86_64_64": 1, "R_X86_64_PC32": 2, "R_X86_64_PLT32": 4, "R_X86_64_GOTPCREL": 9,
        "R_X86_64_32": 10, "R_X86_64_32S": 11, "R_X86_64_16": 12, "R_X86_64_PC16": 13, "R_X86_64_8": 14,
        "R_X86_64_PC8": 15, "R_X86_64_TLSGD": 19, "R_X86_64_GOTTPOFF": 22, "R_X86_64_TPOFF32": 23,
        "R_X86_64_PC64": 24, "R_X86_64_GOTOFF64": 25, "R_X86_64_GOTPC32": 26, "R_X86_64_GOT64": 27,
        "R_X86_64_GOTPCREL64": 28, "R_X86_64_GOTPC64": 29, "R_X86_64_PLTOFF64": 31, "R_X86_64_SIZE32": 32,
        "R_X86_64_SIZE64": 33, "R_X86_64_GOTPCRELX": 41, "R_X86_64_REX_GOTPCRELX": 42,
    ]

    static func number(_ name: String) throws -> UInt32 {
        guard let number = numbers[name] else { throw FixtureError(description: "no relocation type named \(name)") }
        return number
    }
}

// MARK: - Process memory map

/// One line of `/proc/self/maps`.
struct MemoryMapping: Hashable, CustomStringConvertible {
    var start: UInt64
    var end: UInt64
    /// `rwxp`-style permissions, such as `r-xp`.
    var permissions: String
    var line: String

    var isWritable: Bool { permissions.contains("w") }
    var isExecutable: Bool { permissions.contains("x") }
    var description: String { line }
}

/// Reads the mappings of this process.
enum MemoryMaps {
    static func read() throws -> [MemoryMapping] {
        let text = try String(contentsOfFile: "/proc/self/maps", encoding: .utf8)
        return text.split(separator: "\n").map { line in
            let fields = line.split(separator: " ", maxSplits: 2)
            let range = fields[0].split(separator: "-")
            return MemoryMapping(start: UInt64(range[0], radix: 16) ?? 0, end: UInt64(range[1], radix: 16) ?? 0,
                                 permissions: String(fields[1]), line: String(line))
        }
    }

    /// Returns the lines of the mappings inside the module area, where the loader maps everything
    /// it maps. A load that fails before mapping, or a load and unload, leaves them unchanged.
    ///
    /// The rest of the process is left out because the Swift runtime, malloc arenas and thread
    /// stacks of tests running in parallel change it at any time.
    static func moduleArea() throws -> Set<String> {
        let zones = ModuleArea.shared.zones.map(\.range)
        return Set(try read().filter { mapping in
            zones.contains { mapping.start < $0.end && $0.start < mapping.end }
        }.map(\.line))
    }

    /// Returns the mappings that are both writable and executable, which W^X forbids.
    static func writableAndExecutable() throws -> [MemoryMapping] {
        try read().filter { $0.isWritable && $0.isExecutable }
    }
}

// MARK: - Serializing access to the module area

/// Lets tests that compare the module area's mappings before and after run alone, while tests
/// that only load modules run in parallel with each other.
///
/// Swift Testing runs tests in parallel within one process, and every module of the process
/// lives in the one shared module area. A test that loads modules takes the gate shared, and a
/// test that compares mappings takes it exclusively.
///
/// NOTE: a suite that loads modules in this process without taking the gate can still change
/// the area during a comparison and make it fail.
actor ModuleAreaGate {
    static let shared = ModuleAreaGate()

    private var sharedHolders = 0
    private var exclusiveHeld = false
    private var waiting: [(exclusive: Bool, continuation: CheckedContinuation<Void, Never>)] = []

    func acquire(exclusive: Bool) async {
        if waiting.isEmpty, canEnter(exclusive: exclusive) {
            enter(exclusive: exclusive)
            return
        }
        await withCheckedContinuation { waiting.append((exclusive, $0)) }
    }

    func release(exclusive: Bool) {
        if exclusive { exclusiveHeld = false } else { sharedHolders -= 1 }
        // Wake waiters in arrival order for as long as they can enter.
        while let first = waiting.first, canEnter(exclusive: first.exclusive) {
            waiting.removeFirst()
            enter(exclusive: first.exclusive)
            first.continuation.resume()
        }
    }

    private func canEnter(exclusive: Bool) -> Bool {
        exclusive ? !exclusiveHeld && sharedHolders == 0 : !exclusiveHeld
    }

    private func enter(exclusive: Bool) {
        if exclusive { exclusiveHeld = true } else { sharedHolders += 1 }
    }
}

/// Runs `body` while holding the module area gate, shared or exclusively.
func withModuleArea<T>(exclusive: Bool = false, _ body: () async throws -> T) async throws -> T {
    LoaderTestHooks.install()
    await ModuleAreaGate.shared.acquire(exclusive: exclusive)
    do {
        let result = try await body()
        await ModuleAreaGate.shared.release(exclusive: exclusive)
        return result
    } catch {
        await ModuleAreaGate.shared.release(exclusive: exclusive)
        throw error
    }
}

/// Reserves both zones of the module area, once per process.
///
/// The area reserves a zone on first use and keeps it: a comparison of the area's mappings
/// before and after a load should not see the reservation itself appear.
let moduleAreaZonesReserved: Bool = {
    for zone in [ModuleArea.Zone.near, .low] {
        guard let span = try? ModuleArea.shared.allocate(size: 1, zone: zone) else { return false }
        ModuleArea.shared.release(span)
    }
    return true
}()

/// Runs `body` alone in the module area and records an issue for every mapping of the area that
/// `body` added or removed.
func expectModuleAreaUnchanged(_ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                               _ body: () async throws -> Void) async throws {
    try await withModuleArea(exclusive: true) {
        try #require(moduleAreaZonesReserved, "cannot reserve the zones of the module area")
        let before = try MemoryMaps.moduleArea()
        try await body()
        let after = try MemoryMaps.moduleArea()
        let added = after.subtracting(before).sorted(), removed = before.subtracting(after).sorted()
        #expect(added == [], "mappings added: \(added); \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
        #expect(removed == [], "mappings removed: \(removed); \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    }
}

// MARK: - Calling into modules

/// A module function that takes nothing and returns a 64-bit value.
typealias ProbeFunction = @convention(c) () -> UInt64
/// A module function that takes nothing and returns an `int`.
typealias IntFunction = @convention(c) () -> Int32

extension Module {
    /// The global function `symbol` of the module, as a C function of type `type`.
    func function<F>(_ symbol: String, as type: F.Type, sourceLocation: SourceLocation = #_sourceLocation) throws -> F {
        let pointer = try #require(self.address(of: symbol), "module \(name) defines no symbol \(symbol)", sourceLocation: sourceLocation)
        return unsafeBitCast(pointer, to: type)
    }

    /// Returns the address of the global symbol `symbol` as an integer.
    func symbolAddress(_ symbol: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> UInt64 {
        let pointer = try #require(self.address(of: symbol), "module \(name) defines no symbol \(symbol)", sourceLocation: sourceLocation)
        return UInt64(UInt(bitPattern: pointer))
    }
}

extension ModuleHost {
    /// Removes every module, newest first, forcing removal, so that a failed test leaves
    /// nothing mapped.
    func removeAll() {
        for module in modules.reversed() {
            try? remove(module.name, force: true)
        }
    }
}

extension HostOptions {
    /// Options that print only warnings and errors, so that test output is not filled with
    /// a line for every module removed.
    static var quiet: HostOptions {
        var options = HostOptions()
        options.consoleLevel = 4
        return options
    }
}

/// Collects the messages a host logs, in order.
final class LogCollector: Sendable {
    private let records = LockedValue<[LogRecord]>([])

    var handler: @Sendable (LogRecord) -> Void {
        { [self] record in append(record) }
    }

    func append(_ record: LogRecord) {
        records.withLock { $0.append(record) }
    }

    /// The text of every message `module` logged, without trailing newlines.
    func messages(of module: String) -> [String] {
        messages(from: module)
    }

    /// Returns the text of every message logged by `module` (nil for the host's own messages),
    /// without trailing newlines.
    func messages(from module: String?) -> [String] {
        records.withLock { records in
            records.filter { $0.module == module }.map { $0.text.hasSuffix("\n") ? String($0.text.dropLast()) : $0.text }
        }
    }

    /// Like `messages(from:)`, without the loader's warning that a module built without
    /// `modkit build` has no versions for the host symbols it imports, for tests of what the
    /// module itself logs.
    func messagesWithoutVersionWarning(from module: String?) -> [String] {
        messages(from: module).filter { !$0.hasPrefix("no versions for imported symbols") }
    }

    /// Host options that send every message here.
    func hostOptions(_ options: HostOptions = .quiet) -> HostOptions {
        var options = options
        options.logHandler = handler
        return options
    }
}
