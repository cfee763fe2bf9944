import CModKit

/// A process's module system: it loads modules, keeps the registry of loaded modules and
/// their exports, and removes them.
///
/// Module code (init, exit, constructors, callbacks) never runs while the registry lock is
/// held: state changes happen inside the lock and calls out happen after it.
public final class ModuleHost: @unchecked Sendable {
    public let options: HostOptions
    let started = ContinuousClock.now

    struct Registry {
        var modules: [String: Module] = [:]
        /// Load order, for listing and for removal at shutdown.
        var order: [String] = []
        var exports = ExportTable()
    }

    /// Guards `Registry` and the mutable fields of every `Module` of this host.
    let registry = LockedValue(Registry())
    /// The union of every taint flag, sticky; see `taint`.
    let hostTaint = LockedValue<Taint>([])

    /// Commands registered by modules with `modkit_register_command`.
    public let commandRegistry = OwnedRegistry<UnsafeMutablePointer<modkit_command>>(noun: "command")

    /// The symbols of the process and of this host's modules, for symbolizing addresses.
    public let kallsyms = Kallsyms()

    public init(options: HostOptions = HostOptions()) {
        self.options = options
        HostBridge.install()
        HostDirectory.add(self)
    }

    /// A host released while modules are still loaded leaves them loaded, and their memory
    /// mapped, for the rest of the process. Their code may still be reachable through pointers
    /// the host cannot see (signal handlers, threads, unwind tables registered with libgcc), so
    /// unmapping it could crash the process later. Remove modules first to free them.
    deinit {
        HostDirectory.remove(self)
        let leftover = registry.withLock { $0.modules.values }
        for module in leftover {
            _ = Unmanaged.passRetained(module)
        }
    }

    /// The loaded module named `name`.
    public func module(named name: String) -> Module? {
        registry.withLock { $0.modules[name] }
    }

    /// Every loaded module, in load order.
    public var modules: [Module] {
        registry.withLock { registry in registry.order.compactMap { registry.modules[$0] } }
    }

    /// The export named `name` of a live module.
    public func export(named name: String) -> ExportedSymbol? {
        registry.withLock { registry in
            guard let export = registry.exports[name], registry.modules[export.owner]?.state == .live else { return nil }
            return export
        }
    }

    /// Returns the export of each of `names` that a live module exports, nil for the others,
    /// looked up under one acquisition of the registry lock.
    func exports(named names: [String]) -> [ExportedSymbol?] {
        registry.withLock { registry in
            guard !registry.exports.isEmpty else { return Array(repeating: nil, count: names.count) }
            return names.map { name in
                guard let export = registry.exports[name], registry.modules[export.owner]?.state == .live else { return nil }
                return export
            }
        }
    }

    /// Sends a message to the log handler, or to standard error.
    func log(_ level: Int, module: String?, _ text: String) {
        let record = LogRecord(level: level, module: module, text: text, timestamp: ContinuousClock.now - started)
        if let handler = options.logHandler {
            handler(record)
        } else if level <= options.consoleLevel {
            let prefix = module.map { "\($0): " } ?? "modkit: "
            let line = text.hasSuffix("\n") ? prefix + text : prefix + text + "\n"
            StandardError.write(line)
        }
    }
}
