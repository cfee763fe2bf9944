import CModKit
import Glibc
import Synchronization

/// A POSIX thread for the benchmarks, which need threads that start at one moment and whose
/// kernel thread id is known.
final class BenchThread: @unchecked Sendable {
    private var handle = pthread_t()
    private let kernelThreadID = Atomic<Int32>(0)
    private let body: @Sendable () -> Void

    /// Starts `body` on a new thread.
    init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
        let argument = Unmanaged.passRetained(self).toOpaque()
        let status = pthread_create(&handle, nil, { argument in
            let thread = Unmanaged<BenchThread>.fromOpaque(argument!).takeRetainedValue()
            thread.kernelThreadID.store(modkit_gettid(), ordering: .releasing)
            thread.body()
            return nil
        }, argument)
        precondition(status == 0, "pthread_create failed with error \(status)")
    }

    func join() {
        pthread_join(handle, nil)
    }

    /// Waits, for at most a second, until the thread sleeps in the futex system call, as a
    /// removal that waits for references does. Reads `/proc/self/task/ID/syscall`.
    func waitUntilAsleep() {
        #if arch(x86_64)
        let futex = 202
        #else
        let futex = 98
        #endif
        let deadline = ContinuousClock.now + .seconds(1)
        while ContinuousClock.now < deadline {
            let id = kernelThreadID.load(ordering: .acquiring)
            if id != 0, Self.systemCall(of: id) == futex { return }
            usleep(20)
        }
    }

    /// Returns the number of the system call the thread is blocked in, the first field of
    /// `/proc/self/task/ID/syscall`.
    private static func systemCall(of threadID: Int32) -> Int? {
        guard let file = fopen("/proc/self/task/\(threadID)/syscall", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = fread(&buffer, 1, buffer.count, file)
        let text = String(decoding: buffer[..<count], as: UTF8.self)
        return Int(text.prefix { $0 != " " && $0 != "\n" })
    }

    /// Runs `body(index)` on `count` new threads that each run `prepare` and then wait until
    /// all of them are ready, and returns the time from their common start until the last one
    /// returned.
    ///
    /// When the process may run on at least `count` CPUs, thread `index` is bound to the
    /// `index`th of them. Otherwise the scheduler may start two threads on one CPU and move one
    /// only milliseconds later, which a short run counts as if the threads did not scale. The
    /// threads then spin for `warmUpMicroseconds` before they start, because a CPU that was
    /// idle runs slower for its first milliseconds of work. On a two-CPU KVM guest the first
    /// 10 to 20 ms ran up to 1.8 times slower.
    static func runTogether(_ count: Int, warmUpMicroseconds warmUp: UInt32 = 30_000, prepare: @escaping @Sendable () -> Void,
                            _ body: @escaping @Sendable (Int) -> Void) -> Duration {
        let ready = Atomic(0)
        let start = Atomic(false)
        let cpus = allowedCPUs()
        let threads = (0 ..< count).map { index in
            BenchThread {
                if cpus.count >= count { bind(to: cpus[index]) }
                prepare()
                ready.add(1, ordering: .releasing)
                while !start.load(ordering: .acquiring) {}
                body(index)
            }
        }
        while ready.load(ordering: .acquiring) < count { sched_yield() }
        usleep(warmUp)
        let begin = ContinuousClock.now
        start.store(true, ordering: .releasing)
        for thread in threads { thread.join() }
        return ContinuousClock.now - begin
    }

    /// Returns the CPUs that the calling thread may run on, in ascending order.
    static func allowedCPUs() -> [Int] {
        var cpus = [Int32](repeating: 0, count: 1024)
        let count = modkit_allowed_cpus(&cpus, Int32(cpus.count))
        return count > 0 ? cpus[..<Int(count)].map(Int.init) : []
    }

    /// Binds the calling thread to `cpu`. A failure leaves the thread where it is, which only
    /// makes the figures noisier.
    private static func bind(to cpu: Int) {
        _ = modkit_bind_to_cpu(Int32(cpu))
    }
}
