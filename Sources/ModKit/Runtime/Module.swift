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
    /// Bytes of memory mapped for the module (init regions included until they are freed).
    public internal(set) var size: Int

    let memory: ModuleMemory
    /// The module's `struct module`, inside its data region.
    let structure: UnsafeMutablePointer<CModKit.module>
    let referenceIndex: UInt32

    var initFunction: UInt64?
    var exitFunction: UInt64?
    var constructors: [UInt64] = []
    var destructors: [UInt64] = []
    /// `atexit` and `__cxa_atexit` handlers registered by module code, run at removal.
    var exitHandlers: [(function: UInt64, argument: UInt64)] = []
    public internal(set) var exports: [ExportedSymbol] = []
    /// Names of the modules whose exports this module binds.
    public internal(set) var dependencies: [String] = []
    /// Names of the modules that bind this module's exports.
    public internal(set) var users: [String] = []
    /// Every global symbol the module defines, by name.
    let definedSymbols: [String: UInt64]

    init(name: String, files: [String], info: ModuleInfo, memory: ModuleMemory, structure: UnsafeMutablePointer<CModKit.module>,
         referenceIndex: UInt32, definedSymbols: [String: UInt64]) {
        self.name = name
        self.files = files
        self.info = info
        self.memory = memory
        self.size = memory.span.size
        self.structure = structure
        self.referenceIndex = referenceIndex
        self.definedSymbols = definedSymbols
    }

    /// The address of a global symbol the module defines.
    public func address(of symbol: String) -> UnsafeRawPointer? {
        definedSymbols[symbol].flatMap { UnsafeRawPointer(bitPattern: UInt($0)) }
    }

    /// The memory regions of the module, with their final protections.
    public var regions: [Region] { memory.regions }

    /// The module's `struct module`, as C code sees it through `THIS_MODULE`.
    public var modulePointer: UnsafeMutablePointer<CModKit.module> { structure }

    /// Whether `address` lies in the module's memory.
    public func contains(_ address: UInt64) -> Bool {
        memory.span.start <= address && address < memory.span.end
    }
}
