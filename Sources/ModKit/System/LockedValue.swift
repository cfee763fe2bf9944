import Glibc

/// A value guarded by a `pthread_mutex_t`, with the `withLock` interface of
/// `Synchronization.Mutex`.
///
/// The registries, the module area and the reference slots use it in place of `Mutex` so that
/// ThreadSanitizer builds can check their locking.
/// On Linux, a contended `Mutex` (Swift 6.3) waits with `FUTEX_LOCK_PI`, and the kernel hands
/// the lock to the waiter without an atomic operation in instrumented code. ThreadSanitizer then
/// sees no ordering between the two holders and reports every access the lock guards as a
/// race. It intercepts `pthread_mutex_lock` and `pthread_mutex_unlock` instead.
///
/// The lock is not recursive: locking it again on the thread that holds it stops the process.
public final class LockedValue<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ERRORCHECK))
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    public func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        let status = pthread_mutex_lock(mutex)
        precondition(status == 0, "pthread_mutex_lock failed with error \(status); the lock is not recursive")
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
