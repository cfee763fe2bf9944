import CModKit
import Glibc

/// One symbol of a `KallsymsTable`, as its builder receives it.
public struct KallsymsSymbol: Sendable {
    public var name: String
    public var address: UInt64
    /// Bytes; 0 when the symbol table gives no size, in which case the symbol extends to the
    /// next symbol's address.
    public var size: UInt64
    /// The `nm` type letter: `T`/`t` text, `D`/`d` data, `B`/`b` bss, `R`/`r` read-only data,
    /// upper case for a global or weak symbol.
    public var type: UInt8
    /// Whether the symbol lies in init memory, which is freed after a successful init.
    public var isInit: Bool

    public init(name: String, address: UInt64, size: UInt64, type: UInt8, isInit: Bool = false) {
        self.name = name
        self.address = address
        self.size = size
        self.type = type
        self.isInit = isInit
    }
}

/// What kind of code owns a `KallsymsTable`, which decides how its symbols are printed.
public enum KallsymsOwnerKind: Sendable {
    /// The host executable: its symbols are printed without an owner name.
    case executable
    /// A shared library, printed as `[libc.so.6]`.
    case library
    /// A module, printed as `[name]`.
    case module
}

/// The symbols of one owner (the executable, a library or a module), indexed for lookups that
/// allocate nothing.
///
/// Entries are sorted by address. Names are stored NUL-terminated in one buffer that the table
/// owns, and a `KallsymsIndex` over both serves lookups by name and by address. The table is
/// immutable once built, so readers need no lock.
public final class KallsymsTable: @unchecked Sendable {
    struct Entry {
        var address: UInt64
        var size: UInt64
        var nameOffset: UInt32
        var nameLength: UInt32
        var type: UInt8
        var isInit: Bool
    }

    public let ownerName: String
    public let ownerKind: KallsymsOwnerKind
    /// The addresses the owner occupies; an address outside it is never looked up here.
    public let start: UInt64
    public let end: UInt64

    let entries: [Entry]
    private let names: UnsafeMutablePointer<UInt8>
    private let lookupIndex: KallsymsIndex
    /// `ownerName` as bytes, compared against the `module:` prefix of a name lookup.
    let ownerNameBytes: [UInt8]

    /// Builds the table. Symbols outside `start..<end` and duplicates (same address and name)
    /// are dropped.
    public convenience init(ownerName: String, kind: KallsymsOwnerKind, start: UInt64, end: UInt64, symbols: [KallsymsSymbol]) {
        var builder = Builder()
        for symbol in symbols {
            var name = symbol.name
            name.withUTF8 { bytes in
                builder.add(name: bytes, address: symbol.address, size: symbol.size, type: symbol.type, isInit: symbol.isInit)
            }
        }
        self.init(ownerName: ownerName, kind: kind, start: start, end: end, builder: builder)
    }

    init(ownerName: String, kind: KallsymsOwnerKind, start: UInt64, end: UInt64, builder: Builder) {
        self.ownerName = ownerName
        self.ownerKind = kind
        self.start = start
        self.end = end
        ownerNameBytes = Array(ownerName.utf8)

        let names: UnsafeMutablePointer<UInt8> = KallsymsIndex.allocate(max(builder.names.count, 1))
        builder.names.withUnsafeBufferPointer { bytes in
            if let base = bytes.baseAddress { names.initialize(from: base, count: bytes.count) }
        }
        self.names = names

        var sorted = builder.entries.filter { start <= $0.address && $0.address < end }
        sorted.sort { lhs, rhs in
            if lhs.address != rhs.address { return lhs.address < rhs.address }
            return Self.isPreferred(lhs, over: rhs, names: names)
        }
        sorted = Self.removingDuplicates(sorted, names: names)
        Self.fillMissingSizes(&sorted, end: end)
        entries = sorted
        // A global wins over a local of the same name; among equals the lower address wins.
        lookupIndex = KallsymsIndex(entries: sorted, names: names, start: start, end: end) { Self.isGlobal(sorted[$0]) }
    }

    deinit {
        lookupIndex.deallocate()
        free(names)
        crashSymbolStorage?.deallocate()
        free(crashOwnerNameStorage)
    }

    private var crashSymbolStorage: UnsafeMutablePointer<modkit_crash_symbol>?
    private var crashOwnerNameStorage: UnsafeMutablePointer<CChar>?

    /// The symbols as the C crash handler reads them, built on first use. Called only with
    /// the lock of `CrashReports` held.
    var crashSymbols: UnsafePointer<modkit_crash_symbol> {
        if let crashSymbolStorage { return UnsafePointer(crashSymbolStorage) }
        let storage = UnsafeMutablePointer<modkit_crash_symbol>.allocate(capacity: max(entries.count, 1))
        for (index, entry) in entries.enumerated() {
            storage[index] = modkit_crash_symbol(address: entry.address, size: entry.size, name: cName(at: index))
        }
        crashSymbolStorage = storage
        return UnsafePointer(storage)
    }

    /// `ownerName` as a C string, made on first use. Called only with the lock of
    /// `CrashReports` held.
    var crashOwnerName: UnsafePointer<CChar> {
        if let crashOwnerNameStorage { return UnsafePointer(crashOwnerNameStorage) }
        let storage = strdup(ownerName)!
        crashOwnerNameStorage = storage
        return UnsafePointer(storage)
    }

    /// Accumulates symbols and their name bytes before the table is built.
    struct Builder {
        var entries: [Entry] = []
        var names: [UInt8] = []

        mutating func add(name: UnsafeBufferPointer<UInt8>, address: UInt64, size: UInt64, type: UInt8, isInit: Bool) {
            guard name.count > 0, name.count < Int(UInt32.max), names.count + name.count < Int(UInt32.max) else { return }
            let offset = UInt32(names.count)
            names.append(contentsOf: name)
            names.append(0)
            entries.append(Entry(address: address, size: size, nameOffset: offset, nameLength: UInt32(name.count),
                                 type: type, isInit: isInit))
        }
    }

    /// The number of symbols.
    public var count: Int { entries.count }

    /// The index of the symbol that contains `address`, or nil. Allocates nothing.
    public func index(containing address: UInt64) -> Int? {
        lookupIndex.entry(containing: address)
    }

    /// The index of the symbol named `name`, a global one if there is one. Allocates nothing.
    public func index(named name: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let base = name.baseAddress else { return nil }
        return lookupIndex.entry(named: base, length: name.count)
    }

    func index(named name: SymbolName) -> Int? {
        lookupIndex.entry(named: name.start, length: name.count)
    }

    /// The index of the symbol named `name`.
    public func index(named name: String) -> Int? {
        var name = name
        return name.withUTF8 { index(named: $0) }
    }

    public func address(at index: Int) -> UInt64 {
        precondition(index >= 0 && index < entries.count, "kallsyms entry \(index) out of range 0..<\(entries.count)")
        return lookupIndex.address(at: index)
    }
    public func size(at index: Int) -> UInt64 { entries[index].size }
    public func type(at index: Int) -> UInt8 { entries[index].type }
    public func isInit(at index: Int) -> Bool { entries[index].isInit }

    public func name(at index: Int) -> String {
        let entry = entries[index]
        return String(decoding: UnsafeBufferPointer(start: names + Int(entry.nameOffset), count: Int(entry.nameLength)), as: UTF8.self)
    }

    /// The NUL-terminated name of entry `index`, valid while the table is alive.
    public func cName(at index: Int) -> UnsafePointer<CChar> {
        UnsafeRawPointer(names + Int(entries[index].nameOffset)).assumingMemoryBound(to: CChar.self)
    }

    /// Whether `bytes` is this table's owner name.
    func isOwner(named bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        ownerNameBytes.withUnsafeBufferPointer { own in
            own.count == bytes.count && (own.count == 0 || memcmp(own.baseAddress!, bytes.baseAddress!, own.count) == 0)
        }
    }

    /// A copy without the symbols in init memory, for after the init regions are freed.
    func removingInitSymbols() -> KallsymsTable {
        guard entries.contains(where: \.isInit) else { return self }
        var builder = Builder()
        for entry in entries where !entry.isInit {
            let name = UnsafeBufferPointer(start: names + Int(entry.nameOffset), count: Int(entry.nameLength))
            builder.add(name: name, address: entry.address, size: entry.size, type: entry.type, isInit: false)
        }
        return KallsymsTable(ownerName: ownerName, kind: ownerKind, start: start, end: end, builder: builder)
    }

    private static func isGlobal(_ entry: Entry) -> Bool {
        entry.type >= UInt8(ascii: "A") && entry.type <= UInt8(ascii: "Z")
    }

    /// The order among symbols at one address: address lookups report the last of them, so
    /// the preferred one sorts last. Globals are preferred, then names with fewer leading
    /// underscores (`malloc` over `__libc_malloc`), then the lexically smaller name.
    private static func isPreferred(_ lhs: Entry, over rhs: Entry, names: UnsafeMutablePointer<UInt8>) -> Bool {
        let lhsGlobal = isGlobal(lhs)
        if lhsGlobal != isGlobal(rhs) { return !lhsGlobal }
        let lhsUnderscores = leadingUnderscores(lhs, names: names)
        let rhsUnderscores = leadingUnderscores(rhs, names: names)
        if lhsUnderscores != rhsUnderscores { return lhsUnderscores > rhsUnderscores }
        return compareNames(lhs, rhs, names: names) > 0
    }

    private static func leadingUnderscores(_ entry: Entry, names: UnsafeMutablePointer<UInt8>) -> Int {
        var count = 0
        while count < Int(entry.nameLength), names[Int(entry.nameOffset) + count] == UInt8(ascii: "_") { count += 1 }
        return count
    }

    private static func compareNames(_ lhs: Entry, _ rhs: Entry, names: UnsafeMutablePointer<UInt8>) -> Int32 {
        // Both names are NUL-terminated in the buffer.
        strcmp(UnsafeRawPointer(names + Int(lhs.nameOffset)).assumingMemoryBound(to: CChar.self),
               UnsafeRawPointer(names + Int(rhs.nameOffset)).assumingMemoryBound(to: CChar.self))
    }

    private static func removingDuplicates(_ sorted: [Entry], names: UnsafeMutablePointer<UInt8>) -> [Entry] {
        var result: [Entry] = []
        result.reserveCapacity(sorted.count)
        for entry in sorted {
            let isDuplicate = result.last.map { last in
                last.address == entry.address && compareNames(last, entry, names: names) == 0
            } ?? false
            if !isDuplicate { result.append(entry) }
        }
        return result
    }

    /// Gives each symbol without a size the distance to the next higher address, or to the end
    /// of the owner for the last one, as the kernel's kallsyms does.
    private static func fillMissingSizes(_ entries: inout [Entry], end: UInt64) {
        var nextAddress = end
        var index = entries.count - 1
        while index >= 0 {
            let address = entries[index].address
            var first = index
            while first > 0, entries[first - 1].address == address { first -= 1 }
            for position in first ... index where entries[position].size == 0 {
                entries[position].size = nextAddress - address
            }
            nextAddress = address
            index = first - 1
        }
    }
}
