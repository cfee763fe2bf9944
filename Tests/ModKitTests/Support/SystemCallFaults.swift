import CModKit
import ModKit

/// Counts the memory system calls that one piece of work makes, or makes one of them fail.
///
/// `LoaderTestHooks` installs it as `SystemCalls.faultHook` before the first load, and it is
/// never removed, because loads in tests running in parallel read the hook without a lock. It
/// only acts on calls made by the thread that runs `observe`, so loads made by other tests at
/// the same time are neither counted nor failed.
final class SystemCallFaults: Sendable {
    static let shared = SystemCallFaults()

    /// A call to fail: the `occurrence`-th call of `call`, counting from 1, fails with `errno`.
    /// With `persistent`, every later call of that kind fails too.
    struct Fault: Sendable, CustomStringConvertible {
        var call: SystemCalls.Call
        var occurrence: Int
        var errno: Int32
        var persistent = false

        var description: String {
            "\(call.rawValue) call \(occurrence)\(persistent ? " and later" : "") failing with \(Errno(errno))"
        }
    }

    private struct State {
        var thread: Int32?
        var counts: [SystemCalls.Call: Int] = [:]
        var faults: [Fault] = []
        var injected = 0
    }

    private let state = LockedValue(State())

    private init() {
        SystemCalls.faultHook = { [self] call in decide(call) }
    }

    /// Runs `body` on this thread, failing the call `fault` names, and returns how many calls
    /// of each kind `body` made (including the failed ones) and how many faults it injected.
    ///
    /// `body` must not suspend, so that every call it makes runs on this thread.
    func observe(failing fault: Fault? = nil, _ body: () -> Void) -> (counts: [SystemCalls.Call: Int], injected: Int) {
        observe(failing: fault.map { [$0] } ?? [], body)
    }

    /// Runs `body` on this thread, failing every call that one of `faults` names.
    func observe(failing faults: [Fault], _ body: () -> Void) -> (counts: [SystemCalls.Call: Int], injected: Int) {
        let thread = modkit_gettid()
        state.withLock { state in
            state = State(thread: thread, faults: faults)
        }
        body()
        return state.withLock { state in
            defer { state = State() }
            return (state.counts, state.injected)
        }
    }

    private func decide(_ call: SystemCalls.Call) -> Int32? {
        let thread = modkit_gettid()
        return state.withLock { state in
            guard state.thread == thread else { return nil }
            state.counts[call, default: 0] += 1
            let count = state.counts[call]!
            let fault = state.faults.first { fault in
                fault.call == call && (count == fault.occurrence || (fault.persistent && count > fault.occurrence))
            }
            guard let fault else { return nil }
            state.injected += 1
            return fault.errno
        }
    }
}
