import Glibc
import ModKit
import Synchronization

/// The threads of `modkit stress` that call a module command in a loop, and their counts.
///
/// The loader thread drives them through rounds: it starts a round, and pauses them so that it
/// can read the process's memory while no call allocates. Calls count only in the measured
/// round.
final class StressCallers: @unchecked Sendable {
    enum Round: Int {
        case waiting = 0
        case warmUp
        case pausedAfterWarmUp
        case measured
        case pausedAfterMeasured
        case exit
    }

    /// The counts of one thread. `ran` and `failed` are read by the loader while the thread
    /// runs. The thread alone writes the rest, which is read after it is joined.
    final class Counts: @unchecked Sendable {
        let ran = Atomic(0)
        let failed = Atomic(0)
        /// Whether a call ran in any round.
        let ranOnce = Atomic(false)
        var nonZero = 0
        var firstNonZero: CommandResult?
    }

    /// The command to call. Written before the first round starts and read by the threads only
    /// after they load a started round, so the store of `round` orders it.
    var command = ""
    private let host: ModuleHost
    private let arguments: [String]
    private let round = Atomic(Round.waiting.rawValue)
    /// How many times a thread has seen a paused round; `pause` waits for all of them.
    private let parked = Atomic(0)
    private var pauses = 0
    private var threads: [BenchThread] = []
    private let counts: [Counts]

    /// Starts `count` threads, which wait for the first round.
    init(host: ModuleHost, count: Int, arguments: [String]) {
        self.host = host
        self.arguments = arguments
        counts = (0 ..< count).map { _ in Counts() }
        threads = counts.map { counts in BenchThread { [self] in self.callLoop(counts) } }
    }

    /// Calls that ran in the measured round, so far.
    var ran: Int { counts.reduce(0) { $0 + $1.ran.load(ordering: .relaxed) } }
    /// Calls that failed cleanly in the measured round, so far.
    var failed: Int { counts.reduce(0) { $0 + $1.failed.load(ordering: .relaxed) } }

    /// Whether every thread has run a call.
    var allRan: Bool { counts.allSatisfy { $0.ranOnce.load(ordering: .relaxed) } }

    /// Starts calling. `round` is `.warmUp` or `.measured`.
    func start(_ round: Round) {
        self.round.store(round.rawValue, ordering: .releasing)
    }

    /// Stops calling after the call in progress and waits until every thread has stopped.
    func pause() {
        let current = Round(rawValue: round.load(ordering: .acquiring))
        round.store((current == .warmUp ? Round.pausedAfterWarmUp : .pausedAfterMeasured).rawValue, ordering: .releasing)
        pauses += 1
        while parked.load(ordering: .acquiring) < pauses * threads.count { usleep(50) }
    }

    /// Ends the threads and joins them.
    func stop() {
        round.store(Round.exit.rawValue, ordering: .releasing)
        for thread in threads { thread.join() }
        threads = []
    }

    /// Prints a note if calls in the measured round returned a non-zero status. Call it after
    /// `stop`.
    func reportNonZeroStatuses() {
        let total = counts.reduce(0) { $0 + $1.nonZero }
        guard total > 0, let first = counts.compactMap(\.firstNonZero).first else { return }
        var text = "\(total) \(total == 1 ? "call" : "calls") of \(command) returned a non-zero status; the first returned \(first.status)"
        text += first.output.isEmpty ? " with no output" : " with output: \(first.output)"
        StressCommand.reportNote(text)
    }

    private func callLoop(_ counts: Counts) {
        var acknowledged = Round.waiting
        while true {
            let current = Round(rawValue: round.load(ordering: .acquiring)) ?? .exit
            switch current {
            case .warmUp, .measured:
                call(counts, counted: current == .measured)
            case .exit:
                return
            case .waiting, .pausedAfterWarmUp, .pausedAfterMeasured:
                if current != .waiting && current != acknowledged {
                    acknowledged = current
                    parked.add(1, ordering: .releasing)
                }
                usleep(50)
            }
        }
    }

    /// Calls the command once. `callCommand` takes a reference on the command's owner with
    /// `try_module_get` for the call, and fails with a `RegistryError` while the module is
    /// initializing, going away or not loaded.
    private func call(_ counts: Counts, counted: Bool) {
        do {
            let result = try host.callCommand(command, arguments: arguments)
            counts.ranOnce.store(true, ordering: .relaxed)
            guard counted else { return }
            counts.ran.add(1, ordering: .relaxed)
            if result.status != 0 {
                counts.nonZero += 1
                if counts.firstNonZero == nil { counts.firstNonZero = result }
            }
        } catch {
            if counted { counts.failed.add(1, ordering: .relaxed) }
        }
    }
}
