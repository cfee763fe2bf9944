import Foundation
@testable import ModKit
import Testing

/// Loads that reuse the load cache: a changed file is always read again, and a reused linked
/// image is used only when every input of relocation is unchanged.
///
/// Each test runs alone in the module area, so that a module removed and loaded again gets the
/// span it had, as it does in `modkit exec --repeat`.
@Suite("load cache")
struct LoadCacheTests {
    /// A module whose `version()` returns `value`. Every value of 4 digits compiles to an
    /// object of the same size.
    static func versionSource(_ value: Int) -> String {
        "int version(void) { return \(value); }\n"
    }

    @Test("unchanged file reuses the linked image")
    func unchangedFile() async throws {
        let directory = try TemporaryDirectory(prefix: "cache")
        defer { directory.remove() }
        // Read-only data of an unusual size gives the module a span that no other test's
        // module left behind, so the second load gets the first one's span back.
        let object = try await ObjectBuilder.compile("""
            const char unchanged_table[7 * 4096 + 100] = { 1, 2, 3 };
            int unchanged_probe(void) { return unchanged_table[2] + 40; }
            """, name: "unchanged", in: directory)

        try await withModuleArea(exclusive: true) {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            var firstStatistics = LoadStatistics()
            let first = try host.load(files: [object], statistics: &firstStatistics)
            let firstBase = first.regions.first?.start
            let firstBytes = Self.readOnlyBytes(of: first)
            try host.remove(first.name)

            var secondStatistics = LoadStatistics()
            let second = try host.load(files: [object], statistics: &secondStatistics)
            defer { try? host.remove(second.name) }

            #expect(firstStatistics.reuse == .none)
            try #require(second.regions.first?.start == firstBase, "the second load got another span")
            #expect(secondStatistics.reuse == .linkedImage)
            #expect(Self.readOnlyBytes(of: second) == firstBytes)
            #expect(try second.function("unchanged_probe", as: IntFunction.self)() == 43)
        }
    }

    @Test("module with init code reuses the linked image")
    func initCode() async throws {
        let directory = try TemporaryDirectory(prefix: "cache")
        defer { directory.remove() }
        // The init regions are released after init and the rest at removal. The two spans
        // must join again for the next load to get the same address.
        let object = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            const char init_user_table[5 * 4096 + 300] = { 1 };
            static int __initdata init_value = 5;
            static int started;
            int init_user_probe(void) { return started + init_user_table[0]; }
            EXPORT_SYMBOL(init_user_probe);
            static int __init start(void) { started = init_value; return 0; }
            static void stop(void) {}
            module_init(start);
            module_exit(stop);
            """, name: "init_user", in: directory)

        try await withModuleArea(exclusive: true) {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let first = try host.load(files: [object])
            let firstBase = first.regions.first?.start
            #expect(first.regions.contains { $0.kind.isInit } == false)
            try host.remove(first.name)

            var statistics = LoadStatistics()
            let second = try host.load(files: [object], statistics: &statistics)
            defer { try? host.remove(second.name) }
            try #require(second.regions.first?.start == firstBase, "the second load got another span")
            #expect(statistics.reuse == .linkedImage)
            #expect(try second.function("init_user_probe", as: IntFunction.self)() == 6)
        }
    }

    @Test("rewritten file is read again")
    func rewrittenFile() async throws {
        let directory = try TemporaryDirectory(prefix: "cache")
        defer { directory.remove() }
        let original = try await ObjectBuilder.compile(Self.versionSource(1111), name: "original", in: directory)
        let longer = try await ObjectBuilder.compile(Self.versionSource(2222) + "int extra(void) { return 3; }\n",
                                                     name: "longer", in: directory)
        let object = directory.file("rewritten.o")

        try await withModuleArea(exclusive: true) {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            try Self.overwrite(object, withContentsOf: original)
            #expect(try Self.loadAndCall(object, in: host) == 1111)

            try Self.overwrite(object, withContentsOf: longer)
            var statistics = LoadStatistics()
            #expect(try Self.loadAndCall(object, in: host, statistics: &statistics) == 2222)
            #expect(statistics.reuse == .none)
        }
    }

    @Test("same-size rewrite is read again")
    func sameSizeRewrite() async throws {
        let directory = try TemporaryDirectory(prefix: "cache")
        defer { directory.remove() }
        let original = try await ObjectBuilder.compile(Self.versionSource(1111), name: "original", in: directory)
        let replacement = try await ObjectBuilder.compile(Self.versionSource(2222), name: "replacement", in: directory)
        try #require(try Self.size(of: original) == Self.size(of: replacement))
        let object = directory.file("same_size.o")

        try await withModuleArea(exclusive: true) {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            // The rewrite keeps the inode and the size and may fall into the same timestamp
            // tick as the first write, so only the file's bytes tell the versions apart.
            try Self.overwrite(object, withContentsOf: original)
            #expect(try Self.loadAndCall(object, in: host) == 1111)

            try Self.overwrite(object, withContentsOf: replacement)
            var statistics = LoadStatistics()
            #expect(try Self.loadAndCall(object, in: host, statistics: &statistics) == 2222)
            #expect(statistics.reuse == .none)

            var again = LoadStatistics()
            #expect(try Self.loadAndCall(object, in: host, statistics: &again) == 2222)
            #expect(again.reuse != .none)
        }
    }

    @Test("settled file is found by stat alone", .timeLimit(.minutes(1)))
    func settledFile() async throws {
        let directory = try TemporaryDirectory(prefix: "cache")
        defer { directory.remove() }
        let original = try await ObjectBuilder.compile(Self.versionSource(1111), name: "original", in: directory)
        let replacement = try await ObjectBuilder.compile(Self.versionSource(2222), name: "replacement", in: directory)
        try #require(try Self.size(of: original) == Self.size(of: replacement))
        let object = directory.file("settled.o")

        try await withModuleArea(exclusive: true) {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            try Self.overwrite(object, withContentsOf: original)
            #expect(try Self.loadAndCall(object, in: host) == 1111)
            // Read right after it was written, the file could still change without a new
            // timestamp, so its identity alone does not vouch for it.
            #expect(LoadCache.shared.settledEntry(for: [object]) == nil)

            try await Task.sleep(for: .seconds(FileIdentity.timestampMargin.tv_sec) + .milliseconds(500))
            #expect(try Self.loadAndCall(object, in: host) == 1111)
            #expect(LoadCache.shared.settledEntry(for: [object]) != nil)

            try Self.overwrite(object, withContentsOf: replacement)
            #expect(LoadCache.shared.settledEntry(for: [object]) == nil)
            var statistics = LoadStatistics()
            #expect(try Self.loadAndCall(object, in: host, statistics: &statistics) == 2222)
            #expect(statistics.reuse == .none)
        }
    }

    @Test("moved export is relocated again")
    func movedExport() async throws {
        let directory = try TemporaryDirectory(prefix: "cache")
        defer { directory.remove() }
        let firstProvider = try await ObjectBuilder.compile("int provided(void) { return 1; }\n",
                                                            name: "first_provider", in: directory)
        // The padding function comes first, so the second provider's `provided` lies at
        // another offset from the start of its span than the first provider's.
        let secondProvider = try await ObjectBuilder.compile("""
            int padding(int value) { return value * 3 + 7; }
            int provided(void) { return 2; }
            """, name: "second_provider", in: directory)
        let consumer = try await ObjectBuilder.compile("""
            const char consumer_table[9 * 4096 + 100] = { 1 };
            extern int provided(void);
            int consume(void) { return provided() + consumer_table[0] * 10; }
            """, name: "consumer", in: directory)

        try await withModuleArea(exclusive: true) {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            let first = try host.load(files: [firstProvider])
            let firstAddress = try first.symbolAddress("provided")
            let firstConsumer = try host.load(files: [consumer])
            let consumerBase = firstConsumer.regions.first?.start
            #expect(try firstConsumer.function("consume", as: IntFunction.self)() == 11)
            try host.remove(firstConsumer.name)
            try host.remove(first.name)

            let second = try host.load(files: [secondProvider])
            try #require(try second.symbolAddress("provided") != firstAddress)
            var statistics = LoadStatistics()
            let secondConsumer = try host.load(files: [consumer], statistics: &statistics)
            try #require(secondConsumer.regions.first?.start == consumerBase, "the consumer got another span")
            #expect(statistics.reuse == .objects)
            #expect(try secondConsumer.function("consume", as: IntFunction.self)() == 12)
        }
    }

    @Test("process symbol policy of each host applies")
    func processSymbolPolicy() async throws {
        let directory = try TemporaryDirectory(prefix: "cache")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <string.h>
            const char *volatile module_name = "module";
            int length_of_name(void) { return (int)strlen(module_name); }
            """, name: "policy_user", in: directory)
        var denyOptions = HostOptions.quiet
        denyOptions.processSymbols = .deny

        try await withModuleArea(exclusive: true) {
            let allowing = ModuleHost(options: .quiet)
            defer { allowing.removeAll() }
            let denying = ModuleHost(options: denyOptions)
            defer { denying.removeAll() }

            let first = try allowing.load(files: [object])
            #expect(try first.function("length_of_name", as: IntFunction.self)() == 6)
            try allowing.remove(first.name)

            let error = try #require(throws: LoadError.self) { try denying.load(files: [object]) }
            #expect(error.kind == .undefinedSymbols)

            var statistics = LoadStatistics()
            let second = try allowing.load(files: [object], statistics: &statistics)
            #expect(statistics.reuse != .none)
            #expect(try second.function("length_of_name", as: IntFunction.self)() == 6)
            try allowing.remove(second.name)
        }
    }

    // MARK: Helpers

    /// Loads `object`, calls its `version()` and removes it.
    private static func loadAndCall(_ object: String, in host: ModuleHost) throws -> Int32 {
        var statistics = LoadStatistics()
        return try loadAndCall(object, in: host, statistics: &statistics)
    }

    private static func loadAndCall(_ object: String, in host: ModuleHost, statistics: inout LoadStatistics) throws -> Int32 {
        let module = try host.load(files: [object], statistics: &statistics)
        defer { try? host.remove(module.name) }
        return try module.function("version", as: IntFunction.self)()
    }

    /// Writes the bytes of `source` over `path` in place, keeping the inode when the file
    /// exists.
    private static func overwrite(_ path: String, withContentsOf source: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: source)))
        let file = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        try #require(file >= 0, "cannot open \(path): \(String(cString: strerror(errno)))")
        defer { close(file) }
        let written = bytes.withUnsafeBytes { write(file, $0.baseAddress, $0.count) }
        try #require(written == bytes.count, "cannot write \(path)")
    }

    private static func size(of path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
    }

    /// Returns the bytes of the module's regions that are not writable once it is live: code,
    /// read-only data and the GOT.
    private static func readOnlyBytes(of module: Module) -> [[UInt8]] {
        module.regions.filter { $0.kind == .text || $0.kind == .rodata || $0.kind == .relro }.map { region in
            [UInt8](UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: UInt(region.start)), count: region.size))
        }
    }
}
