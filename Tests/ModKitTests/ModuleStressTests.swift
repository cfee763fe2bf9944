import Foundation
import ModKit
import Synchronization
import Testing

/// Loads and removes a module thousands of times while other threads call its command.
@Suite("Load and removal stress")
struct ModuleStressTests {
    /// Two threads call the module's command in a loop while a third loads the module and
    /// removes it with `wait`, `MODKIT_STRESS_CYCLES` times (default 2000). Every call must run
    /// the command, or fail with `goingAway` while the module initializes or is removed, or
    /// with `notFound` between a removal and the next load. The lines of /proc/self/maps must
    /// be the same afterwards, once the pages ModKit keeps for reuse are dropped. The work runs
    /// in a child process, so that no other test maps memory or starts threads meanwhile.
    @Test("commands survive load and removal cycles")
    func commandsDuringCycles() async throws {
        let directory = try TemporaryDirectory(prefix: "stress")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(commandModule("stress_call", body: """
            calls++;
            modkit_printf(out, "ok %d\\n", module_refcount(THIS_MODULE) >= 1);
            return 0;
            """, declarations: "static unsigned long calls;\n"), name: "stress", in: directory)
        let cycles = ProcessInfo.processInfo.environment["MODKIT_STRESS_CYCLES"].flatMap { Int($0) } ?? 2000

        let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent, \.standardErrorContent]) {
            [object = object as String, cycles = cycles as Int] in
            let (problems, summary) = StressRun(object: object, cycles: cycles).run()
            print(summary)
            // The exit status stays 0 so that the parent receives the report, which lists
            // the problems on standard error.
            FileHandle.standardError.write(Data(problems.map { $0 + "\n" }.joined().utf8))
        }

        let report = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        let summary = String(decoding: result?.standardOutputContent ?? [], as: UTF8.self)
        #expect(report == "", "\(report)")
        #expect(summary.hasPrefix("\(cycles) cycles:"), "\(summary)")
        print("stress: " + summary, terminator: "")
    }
}

/// The body of the stress test, run in the child process.
struct StressRun {
    var object: String
    var cycles: Int

    /// How the calls of one caller thread ended.
    struct CallCounts: Sendable {
        var ran = 0
        var goingAway = 0
        var notFound = 0
        var problems: [String] = []
    }

    /// Returns the problems found, and a line that counts how the calls ended.
    func run() -> (problems: [String], summary: String) {
        var options = HostOptions()
        options.logHandler = { _ in }
        let host = ModuleHost(options: options)
        let object = object
        let cycles = cycles
        // Round 1 warms up and round 2 is measured. The test thread starts a round by storing
        // its number in `round`, and each worker thread adds 1 to `finished` when it ends one.
        let round = Atomic(0)
        let finished = Atomic(0)
        let loadedRounds = Atomic(0)

        // The threads start before the first map is read and return after the last, because
        // thread stacks show up in it.
        let callers = (0 ..< 2).map { _ in
            TestThread { () -> [CallCounts] in
                // A caller that the warm-up round never lets reach a get would otherwise map
                // its counter block in the measured round.
                ModuleHost.prepareCurrentThread()
                var rounds: [CallCounts] = []
                for number in 1 ... 2 {
                    Self.wait(for: number, in: round)
                    rounds.append(Self.callUntilLoaded(host, round: number, loadedRounds: loadedRounds))
                    finished.add(1, ordering: .releasing)
                }
                Self.wait(for: Self.exitRound, in: round)
                return rounds
            }
        }
        let loader = TestThread { () -> [String] in
            ModuleHost.prepareCurrentThread()
            var problems: [String] = []
            for number in 1 ... 2 {
                Self.wait(for: number, in: round)
                problems += Self.cycle(host, object: object, count: number == 1 ? Self.warmUpCycles : cycles)
                loadedRounds.store(number, ordering: .releasing)
                finished.add(1, ordering: .releasing)
            }
            Self.wait(for: Self.exitRound, in: round)
            return problems
        }

        round.store(1, ordering: .releasing)
        _ = waitUntil(timeout: .seconds(600)) { finished.load(ordering: .acquiring) == 3 }
        ModuleArea.shared.dropWarmPages()
        // Sanitizer runtimes map and unmap shadow memory as the process runs, so their builds
        // compare only the module area, where module memory lives.
        let compared = Self.sanitizerRuntimeLoaded ? ModuleArea.shared.zones.map(\.range) : nil
        // Both maps are read into memory allocated here, so that reading them allocates
        // nothing: a malloc arena that grew for the first copy would differ in the second.
        let maps = MapsCopies()
        maps.read(into: maps.before, within: compared)
        round.store(2, ordering: .releasing)
        _ = waitUntil(timeout: .seconds(3600)) { finished.load(ordering: .acquiring) == 6 }
        ModuleArea.shared.dropWarmPages()
        maps.read(into: maps.after, within: compared)
        let before = maps.before.lines(within: compared)
        let after = maps.after.lines(within: compared)
        round.store(Self.exitRound, ordering: .releasing)
        let loaderProblems = loader.join() ?? ["the loader thread did not finish"]
        let rounds = callers.map { $0.join() ?? [] }

        var problems = loaderProblems
        let measured = rounds.compactMap { $0.last }
        problems += measured.flatMap { $0.problems }
        if measured.reduce(0, { $0 + $1.ran }) == 0 { problems.append("no call ran the command") }
        for line in before.subtracting(after).sorted() { problems.append("mapping gone after the run: \(line)") }
        for line in after.subtracting(before).sorted() { problems.append("mapping new after the run: \(line)") }
        let ran = measured.map { String($0.ran) }.joined(separator: " and ")
        let goingAway = measured.reduce(0) { $0 + $1.goingAway }
        let notFound = measured.reduce(0) { $0 + $1.notFound }
        var summary = "\(cycles) cycles: \(ran) calls ran, \(goingAway) found the module going away, \(notFound) found no command"
        if Self.sanitizerRuntimeLoaded { summary += " (sanitizer build: maps compared within the module area)" }
        return (problems, summary)
    }

    /// Cycles of the warm-up round, which reserves the module area and gives each thread its
    /// counter block and malloc arena before the first map is read.
    static let warmUpCycles = 100

    /// The round in which the threads return, after the last map was read: a thread that
    /// exits may unmap its stack.
    static let exitRound = 3

    static func wait(for number: Int, in round: borrowing Atomic<Int>) {
        while round.load(ordering: .acquiring) < number { usleep(100) }
    }

    /// Calls the command until the loader finishes `round`, and sorts the outcomes.
    static func callUntilLoaded(_ host: ModuleHost, round: Int, loadedRounds: borrowing Atomic<Int>) -> CallCounts {
        var counts = CallCounts()
        while loadedRounds.load(ordering: .acquiring) < round {
            do {
                let result = try host.callCommand("stress_call")
                if result.status == 0 && result.output == "ok 1\n" {
                    counts.ran += 1
                } else {
                    counts.problems.append("the command returned \(result.status) with output '\(result.output)'")
                }
            } catch let error as RegistryError where error.kind == .goingAway {
                if error.message != "stress is going away" {
                    counts.problems.append("the going-away error reads '\(error.message)'")
                }
                counts.goingAway += 1
            } catch let error as RegistryError where error.kind == .notFound {
                counts.notFound += 1
            } catch {
                counts.problems.append("the call failed with an unexpected error: \(error)")
            }
        }
        return counts
    }

    /// Loads and removes the module `count` times.
    static func cycle(_ host: ModuleHost, object: String, count: Int) -> [String] {
        for index in 0 ..< count {
            do {
                _ = try host.load(files: [object])
                try host.remove("stress", wait: true, timeout: .seconds(60))
            } catch {
                return ["cycle \(index): \(error)"]
            }
        }
        return []
    }

    /// Whether ThreadSanitizer or AddressSanitizer is in the process.
    static var sanitizerRuntimeLoaded: Bool {
        let process = UnsafeMutableRawPointer(bitPattern: 0)
        return dlsym(process, "__tsan_init") != nil || dlsym(process, "__asan_init") != nil
    }

    /// Whether a line of /proc/self/maps, `START-END PERMISSIONS ...`, overlaps one of `ranges`.
    static func line(_ line: String, overlaps ranges: [AreaSpan]) -> Bool {
        let bounds = line.prefix { $0 != " " }.split(separator: "-").compactMap { UInt64($0, radix: 16) }
        guard bounds.count == 2 else { return false }
        return ranges.contains { $0.start < bounds[1] && bounds[0] < $0.end }
    }

}

/// Copies of /proc/self/maps in memory allocated once. The kernel builds the file a page at a
/// time, so a read that races with a mapping change can miss lines, and a copy is kept only
/// once two reads in a row agree.
final class MapsCopies {
    /// One copy: raw bytes in a buffer that is never reallocated.
    final class Copy {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 16)
        var count = 0

        deinit { storage.deallocate() }

        var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[..<count]) }

        /// Reads the whole file, and returns false if it does not fit.
        func readMaps() -> Bool {
            let descriptor = open("/proc/self/maps", O_RDONLY)
            guard descriptor >= 0 else { return false }
            defer { close(descriptor) }
            count = 0
            while count < storage.count {
                let result = Glibc.read(descriptor, storage.baseAddress! + count, storage.count - count)
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { return true }
                count += result
            }
            return false
        }

        /// The lines of the copy, or only those that overlap `ranges`.
        func lines(within ranges: [AreaSpan]?) -> Set<String> {
            let all = Self.joiningMallocHeaps(String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init))
            guard let ranges else { return Set(all) }
            return Set(all.filter { StressRun.line($0, overlaps: ranges) })
        }

        /// Replaces each glibc malloc heap of another thread's arena, a 64 MiB reservation
        /// whose used part grows in place (`rw-p`, then `---p` to the end), with one line.
        /// A heap that grew by a page while module code or the cache allocated is not a
        /// mapping the loader left behind.
        static func joiningMallocHeaps(_ lines: [String]) -> [String] {
            let heapSize: UInt64 = 64 << 20
            var result: [String] = []
            var index = 0
            while index < lines.count {
                if index + 1 < lines.count, let used = anonymousRange(lines[index], permissions: "rw-p"),
                   let reserved = anonymousRange(lines[index + 1], permissions: "---p"),
                   used.start % heapSize == 0, used.end == reserved.start, reserved.end == used.start + heapSize {
                    result.append("\(String(used.start, radix: 16))-\(String(reserved.end, radix: 16)) malloc heap")
                    index += 2
                    continue
                }
                result.append(lines[index])
                index += 1
            }
            return result
        }

        /// Returns the range of an anonymous mapping line with `permissions`, or nil.
        private static func anonymousRange(_ line: String, permissions: String) -> (start: UInt64, end: UInt64)? {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 5, fields[1] == permissions, fields[4] == "0" else { return nil }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt64(bounds[0], radix: 16), let end = UInt64(bounds[1], radix: 16) else { return nil }
            return (start, end)
        }
    }

    let before = Copy()
    let after = Copy()
    private let previous = Copy()

    /// Reads the file into `copy` until two reads in a row agree, at most 100 times. With
    /// `ranges`, only the lines that overlap them must agree, and comparing them allocates.
    func read(into copy: Copy, within ranges: [AreaSpan]?) {
        _ = previous.readMaps()
        for _ in 0 ..< 100 {
            _ = copy.readMaps()
            if let ranges {
                if copy.lines(within: ranges) == previous.lines(within: ranges) { return }
            } else if copy.bytes.elementsEqual(previous.bytes) {
                return
            }
            _ = previous.readMaps()
        }
    }
}
