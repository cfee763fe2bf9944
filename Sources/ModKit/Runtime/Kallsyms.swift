import Synchronization

/// The symbols of a host process, like the kernel's kallsyms: the executable, its shared
/// libraries and every module of one `ModuleHost`, local symbols included.
///
/// Module symbols appear when the module is formed, its init-only symbols (`.init.text`,
/// `.init.data`) go when its init memory is freed, and the rest go when it is removed. The
/// executable's and libraries' symbols are read from their files on disk and read again after
/// the dynamic linker loads or unloads a library.
///
/// `lookup(_:)` and `lookup(named:)` allocate nothing once the library tables are built. The
/// methods that return strings allocate them.
public final class Kallsyms: @unchecked Sendable {
    /// The module tables in load order.
    private let moduleTables = Mutex<[KallsymsTable]>([])
    /// Whether every change of the module tables is published to the crash handler.
    private let publishesCrashTables = Atomic<Bool>(false)
    private let taintLetters = Mutex(TaintLetters())

    init() {}

    /// A symbol found by a lookup, and the offset of the address looked up into it.
    public struct Symbol: Sendable, CustomStringConvertible {
        public let table: KallsymsTable
        public let index: Int
        public let offset: UInt64

        public var name: String { table.name(at: index) }
        public var address: UInt64 { table.address(at: index) }
        public var size: UInt64 { table.size(at: index) }
        /// The `nm` type letter, such as `T`.
        public var type: Character { Character(Unicode.Scalar(table.type(at: index))) }
        public var ownerName: String { table.ownerName }
        public var ownerKind: KallsymsOwnerKind { table.ownerKind }

        /// `func+0x1c/0x80 [module]`: the offset and the symbol's size in hex, then the owner in
        /// brackets unless it is the executable.
        public var description: String {
            let text = "\(name)+0x\(String(offset, radix: 16))/0x\(String(size, radix: 16))"
            return table.ownerKind == .executable ? text : text + " [\(table.ownerName)]"
        }

        /// The symbol's line of `Kallsyms.listing()`, without the newline.
        public var listingLine: String {
            var line = ""
            Kallsyms.appendLine(table, index, to: &line)
            return line
        }
    }

    // MARK: Address to symbol

    /// The symbol that contains `address`, or nil.
    public func lookup(_ address: UInt64) -> Symbol? {
        let fromModule: Symbol? = moduleTables.withLock { tables in
            // A module's range still covers its init memory after init, and the area may give
            // those pages to a later module, so ranges can overlap and the search goes on.
            for table in tables where table.start <= address && address < table.end {
                if let index = table.index(containing: address) {
                    return Symbol(table: table, index: index, offset: address - table.address(at: index))
                }
            }
            return nil
        }
        if let fromModule { return fromModule }

        let images = KallsymsProcessImages.tables()
        guard let table = Self.table(containing: address, in: images), let index = table.index(containing: address) else { return nil }
        return Symbol(table: table, index: index, offset: address - table.address(at: index))
    }

    /// `address` as `func+0x1c/0x80 [module]`, or nil when no symbol contains it.
    public func symbolicate(_ address: UInt64) -> String? {
        lookup(address)?.description
    }

    /// The table among `tables`, sorted by start, whose range contains `address`.
    private static func table(containing address: UInt64, in tables: [KallsymsTable]) -> KallsymsTable? {
        var low = 0
        var high = tables.count
        while low < high {
            let middle = (low + high) >> 1
            if tables[middle].start <= address {
                low = middle + 1
            } else {
                high = middle
            }
        }
        guard low > 0, address < tables[low - 1].end else { return nil }
        return tables[low - 1]
    }

    // MARK: Name to address

    /// The symbol named `name`, or `module:name` to search only the module or library named
    /// `module` (such as `libc.so.6`, or the executable's file name).
    ///
    /// Without a prefix the executable and the libraries are searched before the modules, and
    /// a global symbol anywhere wins over a local one. A `::` (as in a C++ name) is not a
    /// module prefix.
    public func lookup(named name: String) -> Symbol? {
        var name = name
        return name.withUTF8 { lookup(named: $0) }
    }

    /// The address of the symbol named `name`, with the rules of `lookup(named:)`.
    public func address(of name: String) -> UInt64? {
        lookup(named: name)?.address
    }

    private func lookup(named bytes: UnsafeBufferPointer<UInt8>) -> Symbol? {
        var owner: UnsafeBufferPointer<UInt8>?
        var symbolBytes = bytes
        if let colon = Self.modulePrefixEnd(bytes) {
            owner = UnsafeBufferPointer(rebasing: bytes[..<colon])
            symbolBytes = UnsafeBufferPointer(rebasing: bytes[(colon + 1)...])
        }
        guard let symbolBase = symbolBytes.baseAddress, !symbolBytes.isEmpty else { return nil }
        let name = SymbolName(start: symbolBase, count: symbolBytes.count)

        let images = KallsymsProcessImages.tables()
        return moduleTables.withLock { modules -> Symbol? in
            var local: Symbol?
            if let global = Self.search(images, for: name, owner: owner, firstLocal: &local) { return global }
            if let global = Self.search(modules, for: name, owner: owner, firstLocal: &local) { return global }
            return local
        }
    }

    /// Returns the first global symbol named `name` in `tables`, and stores the first local
    /// one in `firstLocal` unless it already contains one.
    private static func search(_ tables: [KallsymsTable], for name: SymbolName, owner: UnsafeBufferPointer<UInt8>?,
                               firstLocal: inout Symbol?) -> Symbol? {
        for table in tables {
            if let owner, !table.isOwner(named: owner) { continue }
            guard let index = table.index(named: name) else { continue }
            let symbol = Symbol(table: table, index: index, offset: 0)
            if isGlobal(table.type(at: index)) { return symbol }
            if firstLocal == nil { firstLocal = symbol }
        }
        return nil
    }

    /// The position of the colon that ends a `module:` prefix, or nil when there is none.
    private static func modulePrefixEnd(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        let colon = UInt8(ascii: ":")
        guard let first = bytes.firstIndex(of: colon), first > 0, first + 1 < bytes.count, bytes[first + 1] != colon else { return nil }
        return first
    }

    private static func isGlobal(_ type: UInt8) -> Bool {
        type >= UInt8(ascii: "A") && type <= UInt8(ascii: "Z")
    }

    // MARK: Listing

    /// Every symbol in the format of `/proc/kallsyms`: the address in 16 hex digits, the `nm`
    /// type letter, the name, and for a module or library a tab and its name in brackets. The
    /// executable and libraries come first, by address, then the modules in load order.
    public func listing() -> String {
        var text = ""
        for table in tables() { Self.append(table, to: &text) }
        return text
    }

    /// The listing of the symbols of the module or library named `owner` (or of the
    /// executable, by its file name), or nil if there is none by that name.
    public func listing(owner: String) -> String? {
        guard let table = tables().first(where: { $0.ownerName == owner }) else { return nil }
        var text = ""
        Self.append(table, to: &text)
        return text
    }

    /// The executable's and libraries' tables by address, then the modules' in load order.
    public func tables() -> [KallsymsTable] {
        KallsymsProcessImages.tables() + moduleTables.withLock { $0 }
    }

    private static func append(_ table: KallsymsTable, to text: inout String) {
        for index in 0 ..< table.count {
            appendLine(table, index, to: &text)
            text += "\n"
        }
    }

    static func appendLine(_ table: KallsymsTable, _ index: Int, to text: inout String) {
        text += hexAddress(table.address(at: index))
        text += " "
        text.unicodeScalars.append(Unicode.Scalar(table.type(at: index)))
        text += " "
        text += table.name(at: index)
        if table.ownerKind != .executable { text += "\t[\(table.ownerName)]" }
    }

    /// `address` as 16 lower-case hex digits.
    static func hexAddress(_ address: UInt64) -> String {
        let digits = String(address, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    // MARK: Module lifecycle

    /// Adds the symbols of a module that was just formed: `table` when the loader has it
    /// already, else a table built from the module.
    func add(_ module: Module, table: KallsymsTable? = nil) {
        let table = table ?? KallsymsTable.forModule(module)
        moduleTables.withLock { $0.append(table) }
        publishCrashTablesIfEnabled()
    }

    /// Drops the module's init-only symbols; called before its init memory is freed.
    func removeInitSymbols(of module: Module) {
        let changed = moduleTables.withLock { tables in
            guard let position = Self.position(of: module, in: tables) else { return false }
            let trimmed = tables[position].removingInitSymbols()
            defer { tables[position] = trimmed }
            return trimmed !== tables[position]
        }
        // A module without init symbols keeps its table, and the crash handler has it already.
        if changed { publishCrashTablesIfEnabled() }
    }

    /// Drops every symbol of the module; called before its memory is freed.
    func remove(_ module: Module) {
        moduleTables.withLock { tables in
            guard let position = Self.position(of: module, in: tables) else { return }
            tables.remove(at: position)
        }
        taintLetters.withLock { _ = $0.modules.removeValue(forKey: module.name) }
        publishCrashTablesIfEnabled()
    }

    /// Publishes the current tables to the crash handler now and after every module change.
    func enableCrashReports() {
        publishesCrashTables.store(true, ordering: .sequentiallyConsistent)
        CrashReports.publish(tables(), taint: taintLetters.withLock { $0 })
    }

    // MARK: Taint in crash reports

    /// The taint letters crash reports print, for the host and by module name.
    struct TaintLetters {
        var host = ""
        var modules: [String: String] = [:]
    }

    /// Records the taint of the host and of `module`, for crash reports.
    func noteTaint(host: Taint, module: Module?, moduleTaint: Taint) {
        taintLetters.withLock { letters in
            letters.host = host.description
            if let module { letters.modules[module.name] = moduleTaint.description }
        }
        publishCrashTablesIfEnabled()
    }

    // NOTE: libraries that the process loads later appear in crash reports only after the
    // next module change republishes the tables.
    private func publishCrashTablesIfEnabled() {
        guard publishesCrashTables.load(ordering: .sequentiallyConsistent) else { return }
        CrashReports.publish(tables(), taint: taintLetters.withLock { $0 })
    }

    private static func position(of module: Module, in tables: [KallsymsTable]) -> Int? {
        tables.firstIndex { $0.ownerName == module.name && $0.start == module.memory.span.start }
    }
}
