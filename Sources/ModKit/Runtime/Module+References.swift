import CModKit

/// The module is initializing or being removed, so its code must not be entered.
public struct ModuleGoingAway: Error, CustomStringConvertible, Sendable {
    public var module: String
    public var description: String { "\(module) is going away" }

    public init(module: String) {
        self.module = module
    }
}

extension Module {
    /// Takes a reference unless the module is still in its init or is being removed
    /// (`try_module_get`). Balance every success with `put()`; prefer `withReference`.
    @inlinable
    public func tryGet() -> Bool {
        try_module_get(modulePointer)
    }

    /// Takes a further reference while one is already held (`__module_get`).
    @inlinable
    public func get() {
        __module_get(modulePointer)
    }

    /// Drops a reference (`module_put`); the put that ends a waiting removal wakes it.
    @inlinable
    public func put() {
        module_put(modulePointer)
    }

    /// Runs `body` while holding a reference, which is dropped however `body` exits.
    ///
    /// Throws `ModuleGoingAway` without running `body` when the module is initializing or
    /// being removed.
    @inlinable
    public func withReference<R, E: Error>(_ body: () throws(E) -> R) throws -> R {
        guard tryGet() else { throw ModuleGoingAway(module: name) }
        defer { put() }
        return try body()
    }

    /// The number of references at one moment (`module_refcount`); 0 when unloading is disabled.
    public var referenceCount: Int {
        Int(module_refcount(modulePointer))
    }
}

extension ModuleHost {
    /// How this host's modules count references: "no-unload" when `options.unloadEnabled` is
    /// false, otherwise the process's mode, chosen when the first host was created.
    /// "membarrier" gets and puts carry only a compiler barrier and removal issues
    /// `membarrier(2)`, while "fence" gets and puts carry a full fence (ThreadSanitizer builds,
    /// and kernels without private expedited membarrier).
    public var referenceCountingMode: String {
        options.unloadEnabled ? HostBridge.referenceMode : "no-unload"
    }

    /// Gives the calling thread its reference counter block now, so that its first `tryGet`
    /// or `try_module_get` maps no memory. Call it after a host exists, for example at the
    /// start of a thread with latency limits. Returns false when no block could be mapped,
    /// and the thread's counts then go to a slower block shared by such threads.
    @discardableResult
    public static func prepareCurrentThread() -> Bool {
        modkit_ref_prepare_thread() == 0
    }

    /// Looks up an export of a live module and takes a reference on its module
    /// (`symbol_get`); nil when no live module exports `name`. Balance with `symbolPut`.
    ///
    /// The get happens under the registry lock. Removal takes a module out of the registry
    /// under that lock before it unmaps it, so the `struct module` counted here is mapped.
    public func symbolGet(_ name: String) -> UnsafeRawPointer? {
        registry.withLock { registry in
            guard let export = registry.exports[name], let owner = registry.modules[export.owner], owner.state == .live,
                  try_module_get(owner.structure) else { return nil }
            return UnsafeRawPointer(bitPattern: UInt(export.address))
        }
    }

    /// Drops the reference a `symbolGet` of `name` took (`symbol_put`). Returns false, and
    /// drops nothing, when no module of this host exports `name`.
    @discardableResult
    public func symbolPut(_ name: String) -> Bool {
        let owner: Module? = registry.withLock { registry in
            registry.exports[name].flatMap { registry.modules[$0.owner] }
        }
        owner?.put()
        return owner != nil
    }
}
