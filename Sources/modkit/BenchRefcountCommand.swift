import Glibc
import ModKit

/// `modkit bench refcount`: measures module reference counting against its targets.
struct BenchRefcountCommand: Command {
    static let name = "bench"
    static let summary = "run a benchmark: module reference counting"
    static let usage = "modkit bench refcount [--iterations N] [--runs N] [--removals N]"
    static let discussion = """
        Prints, in nanoseconds per get and put pair, with 1 and with 2 threads:

          ModKit from C          try_module_get(THIS_MODULE) and module_put(THIS_MODULE) in a
                                 loop of a C module, called from host threads
          ModKit from Swift      Module.tryGet() and put() in a Swift loop
          shared atomic counter  an add and a subtract of one Atomic<Int> that all threads share
          floor                  the faster of a plain increment and decrement of the thread's
                                 own counter or of the current CPU's counter, with the load of
                                 the live flag between them

        Then the median time to stop an idle module and sum its counts (the counting part of a
        removal), the median time from the last module_put to the return of a removal that
        waits for it, and the median time of a whole removal of an idle module. Each figure is
        printed beside its target, with the reference counting mode in effect.

        The C module is compiled at run time from source built into modkit, with $CC or cc and
        the header directory that 'modkit cflags' prints. Figures vary with the load of the
        machine: run it on an otherwise idle machine, from a release build.
        """
    static let options = [
        OptionDefinition(long: "iterations", short: "n", valueName: "N",
                         help: "get and put pairs per thread in one run (default 20000000)"),
        OptionDefinition(long: "runs", short: "r", valueName: "N",
                         help: "runs per loop figure, which is their median (default 5)"),
        OptionDefinition(long: "removals", valueName: "N",
                         help: "removals timed for each removal figure (default 500)"),
    ]

    let iterations: Int
    let runs: Int
    let removals: Int

    init(arguments: ParsedArguments) throws(UsageError) {
        guard let benchmark = arguments.positionals.first else {
            throw UsageError("missing benchmark name; the only benchmark is 'refcount'")
        }
        guard benchmark == "refcount" else {
            throw UsageError("unknown benchmark '\(benchmark)'; the only benchmark is 'refcount'")
        }
        if let extra = arguments.positionals.dropFirst().first ?? arguments.passthrough.first {
            throw UsageError("unexpected argument '\(extra)'")
        }
        iterations = try arguments.integer("iterations", default: 20_000_000)
        runs = try arguments.integer("runs", default: 5)
        removals = try arguments.integer("removals", default: 500)
    }

    func run() -> Int32 {
        var template = Array("/tmp/modkit-bench-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            Self.reportError("cannot create a temporary directory in /tmp: \(String(cString: strerror(errno)))")
            return ExitStatus.failure
        }
        let directory = String(cString: created)
        defer { Self.removeDirectory(directory) }

        do {
            let object = try BenchModule.compile(in: directory)
            var options = HostOptions()
            options.consoleLevel = 4
            // The benchmark's module is compiled with plain cc, without symbol versions.
            options.taintsUnversionedModules = false
            let host = ModuleHost(options: options)
            let report = try measure(host: host, object: object, compilerVersion: BenchModule.compilerVersion(in: directory))
            print(report, terminator: "")
            return ExitStatus.success
        } catch {
            Self.reportError("\(error)")
            return ExitStatus.failure
        }
    }

    private func measure(host: ModuleHost, object: String, compilerVersion: String?) throws -> String {
        let module = try host.load(files: [object])
        // The benchmark threads call into the module, so they hold this reference meanwhile.
        guard module.tryGet() else { throw BenchmarkError(description: "module \(module.name) is not live after its init") }
        let benchmarks = RefcountBenchmarks(host: host, module: module, iterations: iterations, runs: runs)
        var figures = RefcountFigures(mode: host.referenceCountingMode, compiler: BenchModule.compiler,
                                      compilerVersion: compilerVersion, iterations: iterations,
                                      runs: runs, removals: removals)

        let loops = benchmarks.nanosecondsPerPair(threadCounts: [1, 2])
        figures.moduleFromC = loops[.moduleFromC] ?? [:]
        figures.moduleFromSwift = loops[.moduleFromSwift] ?? [:]
        figures.sharedAtomic = loops[.sharedAtomic] ?? [:]
        figures.floorThreadSlot = loops[.floorThreadSlot] ?? [:]
        figures.floorCPUSlot = loops[.floorCPUSlot] ?? [:]
        module.put()
        figures.idleStop = benchmarks.idleStopMicroseconds(samples: removals)
        try host.remove(module.name)

        let removal = try RefcountBenchmarks.removalMicroseconds(host: host, object: object, name: module.name, samples: removals)
        figures.lastPutToRemoval = removal.afterLastPut
        figures.idleRemoval = removal.idle
        return figures.report()
    }

    private static func removeDirectory(_ directory: String) {
        for name in ["\(BenchModule.name).c", "\(BenchModule.name).o", "compiler.log"] {
            unlink(directory + "/" + name)
        }
        rmdir(directory)
    }
}

/// The figures of one `modkit bench refcount` run, keyed by thread count, and their report.
struct RefcountFigures {
    var mode: String
    /// The compiler that built the C module.
    var compiler: String
    /// The first line of the compiler's `--version` output.
    var compilerVersion: String?
    var iterations: Int
    var runs: Int
    var removals: Int
    var moduleFromC: [Int: Double] = [:]
    var moduleFromSwift: [Int: Double] = [:]
    var sharedAtomic: [Int: Double] = [:]
    var floorThreadSlot: [Int: Double] = [:]
    var floorCPUSlot: [Int: Double] = [:]
    var idleStop = 0.0
    var lastPutToRemoval = 0.0
    var idleRemoval = 0.0

    func floor(_ threads: Int) -> Double {
        min(floorThreadSlot[threads] ?? 0, floorCPUSlot[threads] ?? 0)
    }

    func report() -> String {
        var text = "reference counting mode: \(mode)\n"
        text += "C module compiled with: \(compiler) -O2 -fPIC\(compilerVersion.map { " (\($0))" } ?? "")\n\n"
        text += "ns per get and put pair, median of \(runs) runs of \(iterations) pairs per thread\n"
        text += row("", "1 thread", "2 threads")
        text += row("ModKit from C", moduleFromC)
        text += row("ModKit from Swift", moduleFromSwift)
        text += row("shared atomic counter", sharedAtomic)
        text += row("floor", [1: floor(1), 2: floor(2)])
        text += row("  own thread's counter", floorThreadSlot)
        text += row("  current CPU's counter", floorCPUSlot)

        let c1 = moduleFromC[1] ?? 0
        let c2 = moduleFromC[2] ?? 0
        let scaling = c2 > 0 ? 2 * c1 / c2 : 0
        let atomicRatio = c2 > 0 ? (sharedAtomic[2] ?? 0) / c2 : 0
        text += "\ntargets\n"
        text += target("ModKit from C, 1 thread: at most 2x the floor", "\(format(c1)) ns = \(format(c1 / floor(1), digits: 2))x the floor",
                       met: c1 <= 2 * floor(1))
        text += target("throughput with 2 threads: at least 1.8x that of 1 thread", "\(format(scaling, digits: 2))x", met: scaling >= 1.8)
        text += target("2 threads: at least 3x faster than the shared atomic counter", "\(format(atomicRatio, digits: 1))x faster",
                       met: atomicRatio >= 3)
        text += target("stop and sum of an idle module, median of \(removals): at most 20 us", "\(format(idleStop)) us", met: idleStop <= 20)
        text += target("last put to the end of a waiting removal, median of \(removals): at most 50 us",
                       "\(format(lastPutToRemoval)) us", met: lastPutToRemoval <= 50)
        text += "\nwhole removal of an idle module, median of \(removals): \(format(idleRemoval)) us\n"
        return text
    }

    private func row(_ label: String, _ values: [Int: Double]) -> String {
        row(label, values[1].map { format($0) } ?? "-", values[2].map { format($0) } ?? "-")
    }

    private func row(_ label: String, _ first: String, _ second: String) -> String {
        pad(label, 24) + leftPad(first, 10) + leftPad(second, 11) + "\n"
    }

    private func target(_ description: String, _ measured: String, met: Bool) -> String {
        "  \(met ? "met   " : "missed") \(description): \(measured)\n"
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }

    private func leftPad(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }

    /// Formats `value` with `digits` decimals.
    private func format(_ value: Double, digits: Int = 1) -> String {
        let scale = digits == 2 ? 100.0 : 10.0
        let scaled = Int((value * scale).rounded())
        let whole = scaled / Int(scale)
        let fraction = String(scaled % Int(scale))
        return "\(whole)." + String(repeating: "0", count: digits - fraction.count) + fraction
    }
}
