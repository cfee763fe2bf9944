import CModKit

/// Why a module could not be removed.
public struct RemovalError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        case notFound
        case usedByModules
        case inUse
        case notRemovable
        case notLive
        case unloadDisabled
        case timedOut
        /// The barrier that makes the count reliable failed; the module stays loaded.
        case systemCallFailed
    }

    public var kind: Kind
    public var module: String
    public var message: String
    /// The modules using this one's exports, for `usedByModules`.
    public var users: [String] = []
    /// The reference count seen, for `inUse` and `timedOut`.
    public var referenceCount: Int = 0

    public var description: String { message }
}

extension ModuleHost {
    /// Removes a module: stops new references, checks the count, runs its exit and unmaps it.
    ///
    /// - Parameters:
    ///   - wait: sleep until the last reference is dropped instead of failing while the module
    ///     is in use. Each `module_put` wakes the remover; there is no polling.
    ///   - force: remove even if the module has no exit function or is still referenced.
    ///     Code still running in the module will crash, as with `rmmod -f` in Linux.
    ///   - timeout: with `wait`, give up after this long; the module then becomes live again.
    public func remove(_ name: String, wait: Bool = false, force: Bool = false, timeout: Duration? = nil) throws(RemovalError) {
        var statistics = LoadStatistics()
        try remove(name, wait: wait, force: force, timeout: timeout, statistics: &statistics)
    }

    public func remove(_ name: String, wait: Bool = false, force: Bool = false, timeout: Duration? = nil,
                       statistics: inout LoadStatistics) throws(RemovalError) {
        let module = try beginRemoval(name, force: force)
        try statistics.measure(.exit) { () throws(RemovalError) in
            let referenced = try waitForReferences(module, wait: wait, force: force, timeout: timeout)
            if force && (referenced || !options.unloadEnabled || (module.initFunction != nil && module.exitFunction == nil)) {
                addTaint(.forcedRemoval, to: module, reason: "removed by force")
            }
            if let exit = module.exitFunction { ModuleCode.callVoid(exit) }
            runExitHandlers(module)
        }
        observe(.exit, name)
        statistics.measure(.unmap) {
            removeLeftoverEntries(of: module)
            unpublish(module)
            discard(module)
        }
        observe(.unmap, name)
        log(6, module: nil, "removed module \(name)")
    }

    /// Checks that the module may go and marks it `going`, so no other removal starts.
    private func beginRemoval(_ name: String, force: Bool) throws(RemovalError) -> Module {
        let result: Result<Module, RemovalError> = registry.withLock { registry in
            guard let module = registry.modules[name] else {
                return .failure(RemovalError(kind: .notFound, module: name, message: "module \(name) is not loaded"))
            }
            guard module.state == .live else {
                let what = module.state == .going ? "is already being removed" : "is still initializing"
                return .failure(RemovalError(kind: .notLive, module: name, message: "module \(name) \(what)"))
            }
            guard module.users.isEmpty else {
                return .failure(RemovalError(kind: .usedByModules, module: name,
                                             message: "module \(name) is in use by: \(module.users.joined(separator: " "))",
                                             users: module.users))
            }
            if !force && !options.unloadEnabled {
                return .failure(RemovalError(kind: .unloadDisabled, module: name,
                                             message: "module \(name) cannot be removed: module unloading is disabled in this host"))
            }
            if !force && module.initFunction != nil && module.exitFunction == nil {
                return .failure(RemovalError(kind: .notRemovable, module: name,
                                             message: "module \(name) has an init function but no exit function, so it cannot be removed without force"))
            }
            module.state = .going
            return .success(module)
        }
        return try result.get()
    }

    /// Stops new gets and reads the count reliably; refuses, waits or (forced) goes on.
    /// Returns whether references were left when a forced removal went on.
    private func waitForReferences(_ module: Module, wait: Bool, force: Bool, timeout: Duration?) throws(RemovalError) -> Bool {
        guard module.structure.pointee.ref_flags & MODKIT_REF_FLAG_NO_UNLOAD == 0 else {
            // No counts to read: stopping only clears the live flag.
            _ = modkit_ref_stop(module.structure)
            return false
        }
        let stopped = modkit_ref_stop(module.structure)
        guard stopped == 0 else {
            reviveAfterRefusal(module)
            throw RemovalError(kind: .systemCallFailed, module: module.name,
                               message: "module \(module.name) was not removed: membarrier failed (\(Errno(-stopped))), so its reference count cannot be read reliably; try again")
        }
        let count = modkit_ref_sum(module.referenceIndex)
        if count == 0 || force { return count != 0 }
        if !wait {
            reviveAfterRefusal(module)
            throw RemovalError(kind: .inUse, module: module.name,
                               message: "module \(module.name) is in use (reference count \(count))", referenceCount: count)
        }
        let nanoseconds = timeout.map { Int(clamping: $0.components.seconds * 1_000_000_000 + $0.components.attoseconds / 1_000_000_000) } ?? -1
        if modkit_ref_wait_zero(module.structure, nanoseconds) != 0 {
            let left = modkit_ref_sum(module.referenceIndex)
            reviveAfterRefusal(module)
            throw RemovalError(kind: .timedOut, module: module.name,
                               message: "module \(module.name) is still in use after waiting (reference count \(left))", referenceCount: left)
        }
        return false
    }

    /// Makes a module live again after a refused removal.
    ///
    /// A refused removal has already stopped the module, because the count is only reliable
    /// once new gets fail. From `modkit_ref_stop` in `waitForReferences` until the
    /// `modkit_ref_restart` here, every `try_module_get` on the module fails as if it were
    /// going: `callCommand` throws `goingAway` and `symbol_get` returns NULL. Without `wait`, or
    /// when membarrier fails, the window lasts one stop (a membarrier in membarrier mode) and
    /// one sum, the time that `modkit bench refcount` reports for an idle module. With `wait`
    /// and a timeout it lasts until the timeout. Callers should therefore treat a failed get as
    /// "not available now", not as "removed".
    private func reviveAfterRefusal(_ module: Module) {
        registry.withLock { _ in module.state = .live }
        modkit_ref_restart(module.structure)
    }
}
