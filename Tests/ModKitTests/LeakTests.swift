import Foundation
import ModKit
import Testing

/// Load and unload cycles leave `/proc/self/maps` exactly as it was and the C heap as large as it
/// was, and no mapping is ever both writable and executable.
///
/// Other tests running in parallel change the mappings of this process at any time, so each
/// measurement runs in a child process: the test executable itself, filtered to
/// `measureCycles`, which is enabled only there.
@Suite("leaks")
struct LeakTests {
    /// What the child process measures, passed in its environment.
    struct Measurement {
        var object: String
        var cycles: Int

        static let objectVariable = "MODKIT_TEST_LEAK_OBJECT"
        static let cyclesVariable = "MODKIT_TEST_LEAK_CYCLES"

        /// The measurement this process was started for, or nil in an ordinary test run.
        static let requested: Measurement? = {
            let environment = ProcessInfo.processInfo.environment
            guard let object = environment[objectVariable], let cycles = environment[cyclesVariable].flatMap({ Int($0) }) else {
                return nil
            }
            return Measurement(object: object, cycles: cycles)
        }()
    }

    static let moduleSource = """
        #include <stdio.h>
        #include <string.h>
        #include <modkit/module.h>
        MODULE_LICENSE("GPL");
        static char buffer[64];
        int leak_probe(const char *text) {
            snprintf(buffer, sizeof buffer, "%s!", text);
            return (int)strlen(buffer);
        }
        EXPORT_SYMBOL(leak_probe);
        static int start(void) { return leak_probe("start") == 6 ? 0 : -1; }
        static void stop(void) {}
        module_init(start);
        module_exit(stop);
        """

    @Test("2,000 cycles of a small module")
    func smallModule() async throws {
        let directory = try TemporaryDirectory(prefix: "leak")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(Self.moduleSource, name: "small", in: directory)

        try await Self.measureInChildProcess(object: object, cycles: 2000)
    }

    @Test("50 cycles of the Lua interpreter", .timeLimit(.minutes(10)))
    func luaInterpreter() async throws {
        let corpus = try PackagePaths.requireLuaCorpus()
        let directory = try TemporaryDirectory(prefix: "leak")
        defer { directory.remove() }
        let object = try await ProcessorSlots.shared.withSlot {
            try await ObjectBuilder.compile(file: corpus + "/onelua.c",
                                            flags: ["-O2", "-fPIC", "-DMAKE_LUA", "-DLUA_USE_LINUX"],
                                            output: directory.file("onelua.o"))
        }

        try await Self.measureInChildProcess(object: object, cycles: 50)
    }

    /// Runs `measureCycles` alone in a new process of the test executable.
    private static func measureInChildProcess(object: String, cycles: Int) async throws {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var environment = ProcessInfo.processInfo.environment
        environment[Measurement.objectVariable] = object
        environment[Measurement.cyclesVariable] = String(cycles)
        // Keep malloc's own mappings still with one arena whose heap grows 64 MiB at a time and
        // is never trimmed. Otherwise the heap's line in the maps changes with fragmentation
        // alone. Heap leaks are measured with malloc_stats instead.
        environment["GLIBC_TUNABLES"] = "glibc.malloc.arena_max=1:glibc.malloc.top_pad=67108864:glibc.malloc.trim_threshold=4294967295"

        let result = try await runProcess(executable, ["--testing-library", "swift-testing", "--filter", "LeakTests/measureCycles"],
                                          environment: environment, timeout: .seconds(600))

        #expect(result.status == 0, "\(result)")
        // An empty run succeeds too, so check that the filter matched.
        #expect(result.standardOutput.contains("\(cycles) cycles of \(object) measured"), "\(result)")
    }

    @Test("load and unload cycles in a child process",
          .enabled(if: Measurement.requested != nil, "runs only in the child process that the other leak tests start"))
    func measureCycles() throws {
        let measurement = try #require(Measurement.requested)
        let host = ModuleHost(options: .quiet)
        defer { host.removeAll() }

        // A first cycle reserves the module area and lets malloc and the Swift runtime grow to
        // their steady state, and a first heap measurement does the same for the measuring code.
        try host.remove(try host.load(files: [measurement.object]).name)
        _ = try HeapUsage.bytesInUse()
        let before = Set(try MemoryMaps.read().map(\.line))

        // In the first few cycles the heap still grows a little (about 27 KB in all for Lua, the
        // same after 10 or 200 cycles), so its growth is measured over the second half.
        let halfway = measurement.cycles / 2
        var heapHalfway = 0
        for cycle in 1 ... measurement.cycles {
            let module = try host.load(files: [measurement.object])
            let writableCode = try MemoryMaps.writableAndExecutable()
            try host.remove(module.name)
            guard writableCode.isEmpty else {
                Issue.record("after load \(cycle), mappings are writable and executable: \(writableCode)")
                break
            }
            if cycle == halfway { heapHalfway = try HeapUsage.bytesInUse() }
        }

        let heapAfter = try HeapUsage.bytesInUse()
        let after = Set(try MemoryMaps.read().map(\.line))
        #expect(after.subtracting(before).sorted() == [])
        #expect(before.subtracting(after).sorted() == [])
        // A block leaked per cycle costs at least glibc's minimum chunk of 32 bytes on 64-bit
        // systems, so a leak grows the heap by more than 16 bytes per cycle.
        #expect(heapAfter - heapHalfway < 16 * (measurement.cycles - halfway),
                "heap grew from \(heapHalfway) to \(heapAfter) bytes in the last \(measurement.cycles - halfway) cycles")
        print("\(measurement.cycles) cycles of \(measurement.object) measured")
    }
}

/// The C heap's bytes in use, as glibc's `malloc_stats` reports them.
///
/// `malloc_stats` prints to standard error, so standard error goes to a temporary file while it
/// runs. Other threads' messages in that moment go to the file too.
enum HeapUsage {
    static func bytesInUse() throws -> Int {
        guard let symbol = dlsym(nil, "malloc_stats") else { throw FixtureError(description: "malloc_stats not found") }
        let mallocStats = unsafeBitCast(symbol, to: (@convention(c) () -> Void).self)
        var template = Array("/tmp/modkit-heap-XXXXXX".utf8CString)
        let file = mkstemp(&template)
        guard file >= 0 else { throw FixtureError(description: "cannot create a temporary file: \(String(cString: strerror(errno)))") }
        let path = String(cString: template)
        defer {
            close(file)
            unlink(path)
        }

        let standardError = dup(2)
        dup2(file, 2)
        mallocStats()
        dup2(standardError, 2)
        close(standardError)

        // The totals come last: "Total (incl. mmap):", "system bytes = N", "in use bytes = N".
        let report = try String(contentsOfFile: path, encoding: .utf8)
        guard let totals = report.range(of: "Total (incl. mmap):"),
              let line = report[totals.upperBound...].split(separator: "\n").first(where: { $0.contains("in use bytes") }),
              let value = line.split(separator: "=").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) else {
            throw FixtureError(description: "unexpected malloc_stats output: \(report)")
        }
        return value
    }
}
