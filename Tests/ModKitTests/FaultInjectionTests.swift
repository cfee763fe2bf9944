@testable import ModKit
import CModKit
import Glibc
import Testing

/// Every memory system call that a load or a removal makes fails in turn. The loader must
/// return a clean error for each, or carry on where the call only frees memory, and leave
/// nothing behind.
///
/// Each module is first loaded and removed once to count the calls of each kind. Then for each
/// kind and each k from 1 to the count, the k-th call fails alone, and in a second run the
/// k-th and every later call of that kind fail. A load that fails must throw `systemCallFailed`
/// naming the call and its errno, and leave no module, export or kallsyms table, and the module
/// area's lines of /proc/self/maps as they were. A removal whose membarrier fails must refuse,
/// leaving the module live and usable.
@Suite("system call fault injection", .serialized)
struct FaultInjectionTests {
    static let calls: [SystemCalls.Call] = [.mmap, .mprotect, .munmap, .membarrier]
    static let errnos: [SystemCalls.Call: Int32] = [.mmap: ENOMEM, .mprotect: EACCES, .munmap: EINVAL, .membarrier: EPERM]

    /// What a load or removal did with each fault, for the printed summary.
    struct Outcomes {
        var counts: [SystemCalls.Call: Int] = [:]
        var failed: [String] = []
        var tolerated: [String] = []

        func summary(_ title: String) -> String {
            let counted = FaultInjectionTests.calls.map { "\($0.rawValue) \(counts[$0, default: 0])" }.joined(separator: ", ")
            return "\(title): calls \(counted); \(failed.count) faults failed it, \(tolerated.count) were tolerated"
                + (tolerated.isEmpty ? "" : ": " + tolerated.joined(separator: "; "))
        }
    }

    @Test("each call of a load fails in turn", .timeLimit(.minutes(10)))
    func loadFaults() async throws {
        let directory = try TemporaryDirectory(prefix: "faults")
        defer { directory.remove() }
        let fixtures = try await RepresentativeModule.build(in: directory) + [RepresentativeModule.buildLua(in: directory)]

        try await withModuleArea(exclusive: true) {
            let host = ModuleHost(options: LogCollector().hostOptions())
            defer { host.removeAll() }
            for fixture in fixtures {
                let outcomes = try injectLoadFaults(fixture, host: host, prepare: {})
                #expect(outcomes.counts[.mprotect, default: 0] >= 2, "a load of the \(fixture) made too few mprotect calls to count")
                print(outcomes.summary("load of the \(fixture)"))

                // The load takes the span kept for reuse and returns the rest of it with mmap.
                let reused = try injectLoadFaults(fixture, host: host, prepare: Self.keepLargeSpanForReuse)
                #expect(reused.counts[.mmap, default: 0] >= 1, "a load of the \(fixture) into a reused span made no mmap call")
                print(reused.summary("load of the \(fixture) into a reused span"))
            }
        }
    }

    @Test("each call of a load whose init fails")
    func failedInitFaults() async throws {
        let directory = try TemporaryDirectory(prefix: "faults")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <errno.h>
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            int refused_probe(void) { return 1; }
            EXPORT_SYMBOL(refused_probe);
            static int __init refused_start(void) { return -ENODEV; }
            module_init(refused_start);
            """, name: "refused", in: directory)
        let fixture = RepresentativeModule(description: "module whose init fails", files: [object], name: "refused",
                                           probe: { _ in 0 }, expected: 0, export: "refused_probe")

        try await withModuleArea(exclusive: true) {
            let host = ModuleHost(options: LogCollector().hostOptions())
            defer { host.removeAll() }
            var counts: [SystemCalls.Call: Int] = [:]
            try expectAreaRestored("counting the calls of a load of the \(fixture)") {
                var loaded: Result<Module, LoadError>?
                counts = SystemCallFaults.shared.observe {
                    loaded = Result { () throws(LoadError) in try host.load(files: fixture.files) }
                }.counts
                guard case .failure(let error) = try #require(loaded) else {
                    Issue.record("the load of the \(fixture) succeeded")
                    return
                }
                #expect(error.kind == .initFailed)
            }
            #expect(counts[.mprotect, default: 0] >= 3, "the unwound load made too few mprotect calls to count")

            // Faults in the calls that return the memory after the failed init leave the error as it was.
            for fault in Self.faults(for: counts) {
                try expectAreaRestored("load of the \(fixture) with \(fault)") {
                    var loaded: Result<Module, LoadError>?
                    let observed = SystemCallFaults.shared.observe(failing: fault) {
                        loaded = Result { () throws(LoadError) in try host.load(files: fixture.files) }
                    }
                    #expect(observed.injected >= 1, "\(fault) was not injected")
                    guard case .failure(let error) = try #require(loaded) else {
                        Issue.record("the load of the \(fixture) with \(fault) succeeded")
                        return
                    }
                    #expect([.systemCallFailed, .initFailed].contains(error.kind), "\(fault): \(error)")
                    expectGone(fixture, from: host, "after a load of the \(fixture) with \(fault)")
                }
            }
            print("load of the \(fixture): calls \(Self.calls.map { "\($0.rawValue) \(counts[$0, default: 0])" }.joined(separator: ", "))")
        }
    }

    @Test("each call of a removal fails in turn", .timeLimit(.minutes(10)))
    func removalFaults() async throws {
        let directory = try TemporaryDirectory(prefix: "faults")
        defer { directory.remove() }
        let fixtures = try await RepresentativeModule.build(in: directory)

        try await withModuleArea(exclusive: true) {
            let host = ModuleHost(options: LogCollector().hostOptions())
            defer { host.removeAll() }
            let mode = String(cString: modkit_ref_mode_name())
            for fixture in fixtures {
                let outcomes = try injectRemovalFaults(fixture, host: host, prepare: {})
                if mode == "membarrier" {
                    #expect(outcomes.counts[.membarrier] == 1, "a removal in membarrier mode issues one membarrier")
                }
                print(outcomes.summary("removal of the \(fixture) (reference counting mode \(mode))"))

                // With no room to keep its pages, the removal replaces them with mmap.
                let full = try injectRemovalFaults(fixture, host: host, prepare: Self.fillReuseList)
                #expect(full.counts[.mmap, default: 0] >= 1, "a removal of the \(fixture) with the reuse list full made no mmap call")
                print(full.summary("removal of the \(fixture) with the reuse list full"))
            }
        }
    }

    @Test("removal unmaps pages it cannot free")
    func removalWithoutFreeing() async throws {
        let directory = try TemporaryDirectory(prefix: "faults")
        defer { directory.remove() }
        let fixture = try #require(try await RepresentativeModule.build(in: directory).first)

        try await withModuleArea(exclusive: true) {
            let host = ModuleHost(options: LogCollector().hostOptions())
            defer { host.removeAll() }
            let module = try host.load(files: fixture.files)
            let code = try module.symbolAddress(fixture.export)
            // Neither keeping the pages inaccessible nor replacing them works.
            let faults = [SystemCallFaults.Fault(call: .mmap, occurrence: 1, errno: ENOMEM, persistent: true),
                          SystemCallFaults.Fault(call: .mprotect, occurrence: 1, errno: ENOMEM, persistent: true)]
            var removed: Result<Void, RemovalError>?
            let observed = SystemCallFaults.shared.observe(failing: faults) {
                removed = Result { () throws(RemovalError) in try host.remove(module.name) }
            }

            try #require(removed).get()
            #expect(observed.counts[.munmap] == 1)
            expectGone(fixture, from: host, "after a removal that could not free its pages")
            let stillMapped = try MemoryMaps.read().filter { $0.start <= code && code < $0.end }
            #expect(stillMapped.isEmpty, "the removed module's code is still mapped: \(stillMapped)")
        }
    }

    @Test("reserving the module area names the failed mmap")
    func areaReservation() throws {
        let area = ModuleArea()
        let fault = SystemCallFaults.Fault(call: .mmap, occurrence: 1, errno: ENOMEM, persistent: true)
        var result: Result<AreaSpan, LoadError>?
        let observed = SystemCallFaults.shared.observe(failing: fault) {
            result = Result { () throws(LoadError) in try area.allocate(size: 4096, zone: .near) }
        }

        #expect(observed.injected >= 1)
        #expect(area.zones.isEmpty)
        guard case .failure(let error) = try #require(result) else {
            Issue.record("the allocation succeeded although every mmap failed")
            return
        }
        #expect(error.kind == .outOfAddressSpace)
        #expect(error.description == "cannot reserve the module area (1024 MiB): mmap failed: \(Errno(ENOMEM)); check the address space limit (ulimit -v)")
    }

    // MARK: Loads

    /// Counts and fails the calls of a load of `fixture`; `prepare` runs before each load.
    private func injectLoadFaults(_ fixture: RepresentativeModule, host: ModuleHost, prepare: () throws -> Void) throws -> Outcomes {
        var outcomes = Outcomes()
        try expectAreaRestored("counting the calls of a load of the \(fixture)") {
            try prepare()
            var loaded: Result<Module, LoadError>?
            outcomes.counts = SystemCallFaults.shared.observe {
                loaded = Result { () throws(LoadError) in try host.load(files: fixture.files) }
            }.counts
            let module = try #require(try loaded?.get())
            #expect(try fixture.probe(module) == fixture.expected, "\(fixture)")
            try host.remove(module.name)
        }

        for fault in Self.faults(for: outcomes.counts) {
            try expectAreaRestored("load of the \(fixture) with \(fault)") {
                try prepare()
                var loaded: Result<Module, LoadError>?
                let observed = SystemCallFaults.shared.observe(failing: fault) {
                    loaded = Result { () throws(LoadError) in try host.load(files: fixture.files) }
                }
                #expect(observed.injected >= 1, "\(fault) was not injected in a load of the \(fixture)")

                switch try #require(loaded) {
                case .failure(let error):
                    outcomes.failed.append("\(fault)")
                    #expect(error.kind == .systemCallFailed, "\(fault): \(error)")
                    #expect(error.message.contains("\(fault.call.rawValue) "), "\(fault): \(error)")
                    #expect(error.message.hasSuffix("failed: \(Errno(fault.errno))"), "\(fault): \(error)")
                    expectGone(fixture, from: host, "after a load of the \(fixture) with \(fault)")
                case .success(let module):
                    // The call only returned memory, such as the init regions after init.
                    outcomes.tolerated.append("\(fault)")
                    #expect(try fixture.probe(module) == fixture.expected, "\(fixture) loaded with \(fault)")
                    try host.remove(module.name)
                }
            }
        }
        return outcomes
    }

    // MARK: Removals

    /// Counts and fails the calls of a removal of `fixture`; `prepare` runs after each load,
    /// before the removal.
    private func injectRemovalFaults(_ fixture: RepresentativeModule, host: ModuleHost, prepare: () throws -> Void) throws -> Outcomes {
        var outcomes = Outcomes()
        try expectAreaRestored("counting the calls of a removal of the \(fixture)") {
            let module = try host.load(files: fixture.files)
            try prepare()
            var removed: Result<Void, RemovalError>?
            outcomes.counts = SystemCallFaults.shared.observe {
                removed = Result { () throws(RemovalError) in try host.remove(module.name) }
            }.counts
            try #require(removed).get()
        }

        for fault in Self.faults(for: outcomes.counts) {
            try expectAreaRestored("removal of the \(fixture) with \(fault)") {
                let module = try host.load(files: fixture.files)
                try prepare()
                var removed: Result<Void, RemovalError>?
                let observed = SystemCallFaults.shared.observe(failing: fault) {
                    removed = Result { () throws(RemovalError) in try host.remove(module.name) }
                }
                #expect(observed.injected >= 1, "\(fault) was not injected in a removal of the \(fixture)")

                switch try #require(removed) {
                case .failure(let error):
                    outcomes.failed.append("\(fault)")
                    #expect(fault.call == .membarrier, "\(fault): only a failed membarrier may refuse a removal: \(error)")
                    #expect(error.kind == .systemCallFailed, "\(fault): \(error)")
                    #expect(error.message == "module \(fixture.name) was not removed: membarrier failed (\(Errno(fault.errno))), so its reference count cannot be read reliably; try again")
                    expectLive(fixture, module, in: host, "after a removal of the \(fixture) with \(fault)")
                    try host.remove(module.name)
                case .success:
                    outcomes.tolerated.append("\(fault)")
                    expectGone(fixture, from: host, "after a removal of the \(fixture) with \(fault)")
                }
            }
        }
        return outcomes
    }

    // MARK: Module area states

    /// Keeps a span of 16 MiB for reuse, larger than any module here, so that the next load
    /// takes part of it.
    private static func keepLargeSpanForReuse() throws {
        ModuleArea.shared.release(try ModuleArea.shared.allocate(size: 16 << 20, zone: .near))
    }

    /// Keeps as many one-page spans for reuse as the area keeps, so that a released span's
    /// pages are replaced rather than kept.
    private static func fillReuseList() throws {
        // The area joins adjacent warm spans, so only every other span of consecutive ones is
        // released first. The rest find the list full and are returned to the area.
        let spans = try (0 ..< 2 * ModuleArea.warmSpanLimit).map { _ in try ModuleArea.shared.allocate(size: 1, zone: .near) }
        for (index, span) in spans.enumerated() where index.isMultiple(of: 2) { ModuleArea.shared.release(span) }
        for (index, span) in spans.enumerated() where !index.isMultiple(of: 2) { ModuleArea.shared.release(span) }
    }

    // MARK: Checks

    /// Returns the single and the persistent fault for each call that `counts` counted.
    private static func faults(for counts: [SystemCalls.Call: Int]) -> [SystemCallFaults.Fault] {
        calls.flatMap { call in
            (0 ..< counts[call, default: 0]).flatMap { index in
                [false, true].map { persistent in
                    SystemCallFaults.Fault(call: call, occurrence: index + 1, errno: errnos[call]!, persistent: persistent)
                }
            }
        }
    }

    /// Runs `body` and expects the module area's mappings to be as before once the pages kept
    /// for reuse are dropped, since the loader keeps some whether or not a call failed.
    private func expectAreaRestored(_ context: String, sourceLocation: SourceLocation = #_sourceLocation,
                                    _ body: () throws -> Void) throws {
        // Reserving a zone is an mmap that only the first load in the process makes.
        try #require(moduleAreaZonesReserved, "cannot reserve the zones of the module area", sourceLocation: sourceLocation)
        ModuleArea.shared.dropWarmPages()
        let before = try MemoryMaps.moduleArea()
        try body()
        ModuleArea.shared.dropWarmPages()
        let after = try MemoryMaps.moduleArea()
        #expect(after.subtracting(before).sorted() == [], "mappings added by the \(context)", sourceLocation: sourceLocation)
        #expect(before.subtracting(after).sorted() == [], "mappings removed by the \(context)", sourceLocation: sourceLocation)
        #expect(try MemoryMaps.writableAndExecutable().isEmpty, "\(context)", sourceLocation: sourceLocation)
    }

    private func expectGone(_ fixture: RepresentativeModule, from host: ModuleHost, _ context: String) {
        #expect(host.modules.isEmpty, "modules left \(context)")
        #expect(host.module(named: fixture.name) == nil, "module left \(context)")
        #expect(host.export(named: fixture.export) == nil, "export left \(context)")
        #expect(host.registry.withLock { $0.exports[fixture.export] } == nil, "export table entry left \(context)")
        #expect(host.kallsyms.listing(owner: fixture.name) == nil, "kallsyms table left \(context)")
    }

    private func expectLive(_ fixture: RepresentativeModule, _ module: Module, in host: ModuleHost, _ context: String) {
        #expect(host.module(named: fixture.name) === module, "module missing \(context)")
        #expect(module.state == .live, "module not live \(context)")
        #expect(host.export(named: fixture.export) != nil, "export missing \(context)")
        #expect(host.kallsyms.listing(owner: fixture.name) != nil, "kallsyms table missing \(context)")
        #expect((try? fixture.probe(module)) == fixture.expected, "module not usable \(context)")
        #expect(module.tryGet(), "try_module_get failed \(context)")
        module.put()
    }
}
