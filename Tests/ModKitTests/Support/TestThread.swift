import CModKit
import Glibc
import ModKit
import Synchronization

/// A POSIX thread for a test step that blocks, such as a load whose init waits or a removal
/// that waits for references, so that the step never holds a thread of the concurrency pool.
final class TestThread<Value: Sendable>: Sendable {
    private let handle = LockedValue<pthread_t?>(nil)
    private let result = LockedValue<Value?>(nil)
    private let kernelThreadID = Atomic<Int32>(0)

    /// Starts `body` on a new thread and returns once the thread runs.
    init(_ body: @escaping @Sendable () -> Value) {
        let thread = startThread(ThreadEntry { [self] in
            self.kernelThreadID.store(modkit_gettid(), ordering: .releasing)
            let value = body()
            self.result.withLock { $0 = value }
        })
        handle.withLock { $0 = thread }
        while self.kernelThreadID.load(ordering: .acquiring) == 0 { sched_yield() }
    }

    /// The thread's kernel id, for reading `/proc/self/task/ID`.
    var threadID: Int32 { kernelThreadID.load(ordering: .acquiring) }

    /// Whether the body has returned.
    var isFinished: Bool { result.withLock { $0 != nil } }

    /// Waits for the body to return and returns its value, or returns nil once `timeout`
    /// passes. After nil the thread keeps running and `join` may be called again.
    func join(timeout: Duration = .seconds(60)) -> Value? {
        guard waitUntil(timeout: timeout, { isFinished }) else { return nil }
        let thread = handle.withLock { handle in
            defer { handle = nil }
            return handle
        }
        if let thread { pthread_join(thread, nil) }
        return result.withLock { $0 }
    }
}

/// The body of a new thread, passed through `pthread_create`'s argument.
private final class ThreadEntry: @unchecked Sendable {
    let body: () -> Void

    init(_ body: @escaping () -> Void) {
        self.body = body
    }
}

private func startThread(_ entry: ThreadEntry) -> pthread_t {
    var thread = pthread_t()
    let status = pthread_create(&thread, nil, { argument in
        Unmanaged<ThreadEntry>.fromOpaque(argument!).takeRetainedValue().body()
        return nil
    }, Unmanaged.passRetained(entry).toOpaque())
    precondition(status == 0, "pthread_create failed with error \(status)")
    return thread
}

/// Checks `condition` every millisecond until it holds, and returns false if it still does not
/// hold once `timeout` passes.
func waitUntil(timeout: Duration = .seconds(10), _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { return false }
        usleep(1000)
    }
    return true
}
