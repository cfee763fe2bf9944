import CModKit
import ModKit
import Synchronization
import Testing

/// The table of module-owned entries behind commands: keys, owners, and the reference a call
/// holds on its owner.
@Suite("Owned registry")
struct OwnedRegistryTests {
    @Test("duplicate key is rejected")
    func duplicateKey() throws {
        let registry = OwnedRegistry<Int>(noun: "widget")
        try registry.register("first", owner: nil, entry: 1)

        let error = #expect(throws: RegistryError.self) { try registry.register("first", owner: nil, entry: 2) }

        #expect(error?.kind == .duplicate)
        #expect(error?.message == "widget first is already registered")
        #expect(try registry.withEntry("first") { $0 } == 1)
    }

    @Test("unknown key is not found")
    func unknownKey() {
        let registry = OwnedRegistry<Int>(noun: "widget")

        let error = #expect(throws: RegistryError.self) { try registry.withEntry("missing") { $0 } }

        #expect(error?.kind == .notFound)
        #expect(error?.message == "widget missing not found")
    }

    @Test("only the owner unregisters")
    func ownerUnregisters() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(moduleProlog, name: "widget_owner")
        let registry = OwnedRegistry<Int>(noun: "widget")
        try registry.register("owned", owner: module.modulePointer, entry: 1)
        try registry.register("shared", owner: nil, entry: 2)

        #expect(!registry.unregister("owned", owner: nil))
        #expect(registry.removeAll(ownedBy: module.modulePointer) == ["owned"])
        #expect(registry.all.map(\.key) == ["shared"])
        #expect(registry.unregister("shared", owner: nil))
        #expect(registry.all.isEmpty)
    }

    @Test("entry call holds a reference")
    func entryHoldsReference() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(moduleProlog, name: "widget_module")
        let registry = OwnedRegistry<Int>(noun: "widget")
        try registry.register("counted", owner: module.modulePointer, entry: 1)

        let countInside = try registry.withEntry("counted") { _ in module.referenceCount }
        let countForOwner = try registry.withEntry("counted", calledBy: module.modulePointer) { _ in module.referenceCount }

        #expect(countInside == 1)
        #expect(countForOwner == 0)
        #expect(module.referenceCount == 0)
    }

    /// Two threads each register, call and unregister their own entry of one owner in a loop,
    /// the way a module's init and exit and the host's callers share a registry.
    @Test("concurrent register, call and unregister")
    func concurrentUse() async throws {
        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try await test.load(moduleProlog + """
            static void __exit widget_exit(void) {}
            module_exit(widget_exit);
            """, name: "widget_busy")
        let registry = OwnedRegistry<Int>(noun: "widget")
        let stop = Atomic(false)
        let calls = Atomic(0)

        let callers = (0 ..< 2).map { index in
            TestThread { () -> Int in
                let owner = module.modulePointer
                var failures = 0
                while !stop.load(ordering: .relaxed) {
                    let key = "widget\(index)"
                    try? registry.register(key, owner: owner, entry: index)
                    do {
                        _ = try registry.withEntry(key) { $0 }
                        calls.add(1, ordering: .relaxed)
                    } catch {
                        failures += 1
                    }
                    registry.unregister(key, owner: owner)
                }
                return failures
            }
        }
        #expect(waitUntil { calls.load(ordering: .relaxed) > 1000 })
        stop.store(true, ordering: .relaxed)
        let failures = callers.map { $0.join() }

        #expect(failures == [0, 0])
        #expect(registry.all.isEmpty)
        #expect(module.referenceCount == 0)
    }
}
