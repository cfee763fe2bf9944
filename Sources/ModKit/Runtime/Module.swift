import CModKit

/// A loaded module.
///
/// Mutable fields are guarded by the owning host's registry lock; read them through the host
/// or after the module is live.
public final class Module: @unchecked Sendable {
    public let name: String
    /// The object files the module was linked from, as named by the caller.
    public let files: [String]
    public let info: ModuleInfo
    /// The host that loaded the module.
    public internal(set) weak var host: ModuleHost?
    public internal(set) var state: ModuleState = .unformed
    /// The reasons the module cannot be fully trusted, such as a proprietary license (`P`).
    public internal(set) var taint: Taint = []
    /// Bytes of memory mapped for the module (init regions included until they are freed).
    public internal(set) var size: Int

    let memory: ModuleMemory
    /// The module's `struct module`, inside its data region.
    @usableFromInline let structure: UnsafeMutablePointer<CModKit.module>
    let referenceIndex: UInt32

    var initFunction: UInt64?
    var exitFunction: UInt64?
    var constructors: [UInt64] = []
    var unwindTables: [UInt64] = []
    /// Whether `unwindTables` are registered with the unwinder; libgcc aborts on deregistering
    /// a table it does not know.
    var unwindTablesRegistered = false
    /// Every `module_param`, hidden ones included.
    var allParameters: [ModuleParameter] = []
    /// Guards setting and reading parameters. It also contains the strings set for `charp` parameters.
    let parameterStrings = LockedValue<[UnsafeMutablePointer<CChar>]>([])
    var destructors: [UInt64] = []
    /// `atexit` and `__cxa_atexit` handlers registered by module code, run at removal.
    var exitHandlers: [(function: UInt64, argument: UInt64)] = []
    /// Exports declared with `EXPORT_SYMBOL`; empty for a plain object.
    var declaredExports: [ExportedSymbol] = []
    /// For a plain object without ModKit metadata, which exports every visible global.
    var exportedGlobals: ModuleGlobals?

    /// What the module exports, sorted by name.
    public var exports: [ExportedSymbol] {
        guard let exportedGlobals else { return declaredExports.sorted { $0.name < $1.name } }
        return exportedGlobals.names.sorted().compactMap { exportedGlobals.export($0, owner: name) }
    }
    /// Names of the modules whose exports this module binds.
    public internal(set) var dependencies: [String] = []
    /// Names of the modules that bind this module's exports.
    public internal(set) var users: [String] = []
    /// Every global symbol the module defines, by name, and the addresses of every object's
    /// symbols; shared with the link, not copied.
    let symbols: ModuleSymbols
    let symbolAddresses: [[UInt64]]
    /// The objects the module was linked from; `symbols` refers to their string tables.
    let objects: [ObjectFile]

    init(name: String, files: [String], info: ModuleInfo, memory: ModuleMemory, structure: UnsafeMutablePointer<CModKit.module>,
         referenceIndex: UInt32, objects: [ObjectFile], symbols: ModuleSymbols, symbolAddresses: [[UInt64]]) {
        self.name = name
        self.files = files
        self.info = info
        self.memory = memory
        self.size = memory.span.size
        self.structure = structure
        self.referenceIndex = referenceIndex
        self.objects = objects
        self.symbols = symbols
        self.symbolAddresses = symbolAddresses
    }

    /// The address of a global symbol the module defines.
    public func address(of symbol: String) -> UnsafeRawPointer? {
        symbols.definition(named: symbol).flatMap { UnsafeRawPointer(bitPattern: UInt(symbolAddresses[$0.object][$0.index])) }
    }

    /// The memory regions of the module, with their final protections.
    public var regions: [Region] { memory.regions }

    /// The module's `struct module`, as C code sees it through `THIS_MODULE`.
    @inlinable public var modulePointer: UnsafeMutablePointer<CModKit.module> { structure }

    /// Whether `address` lies in the module's memory.
    public func contains(_ address: UInt64) -> Bool {
        memory.span.start <= address && address < memory.span.end
    }
}
