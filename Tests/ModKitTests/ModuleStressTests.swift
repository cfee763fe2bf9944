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
            var problems: [String] = []
            for number in 1 ... 2 {
                Self.wait(for: number, in: round)
                problems += Self.cycle(host, object: object, count: number == 1 ? 50 : cycles)
                loadedRounds.store(number, ordering: .releasing)
                finished.add(1, ordering: .releasing)
            }
            Self.wait(for: Self.exitRound, in: round)
            return problems
        }

        round.store(1, ordering: .releasing)
        _ = waitUntil(timeout: .seconds(600)) { finished.load(ordering: .acquiring) == 3 }
        ModuleArea.shared.dropWarmPages()
        let before = Self.memoryMap()
        round.store(2, ordering: .releasing)
        _ = waitUntil(timeout: .seconds(3600)) { finished.load(ordering: .acquiring) == 6 }
        ModuleArea.shared.dropWarmPages()
        let after = Self.memoryMap()
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
        let summary = "\(cycles) cycles: \(ran) calls ran, \(goingAway) found the module going away, \(notFound) found no command"
        return (problems, summary)
    }

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

    /// The lines of /proc/self/maps. The kernel builds the file a page at a time, so a read
    /// that races with a mapping change can miss lines: read until two reads agree.
    static func memoryMap() -> Set<String> {
        var previous: Set<String> = []
        for _ in 0 ..< 100 {
            let text = (try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8)) ?? ""
            let lines = Set(text.split(separator: "\n").map(String.init))
            if lines == previous { return lines }
            previous = lines
        }
        return previous
    }
}
