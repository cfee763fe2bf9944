import Glibc

/// Waits for blocked signals on a thread of its own with `sigwait`, so no code runs in a signal
/// handler. Block the signals in every thread first (`pthread_sigmask` before any thread
/// starts), or the kernel may deliver them elsewhere.
public final class SignalWaiter: @unchecked Sendable {
    private let signals: sigset_t
    private let received = LockedValue<Int32>(0)

    public init(signals: sigset_t) {
        self.signals = signals
    }

    /// Starts the thread; `onSignal` runs on it after the first signal arrives.
    public func start(_ onSignal: @escaping @Sendable () -> Void) throws {
        let signals = signals
        try startDetachedThread { [self] in
            var set = signals
            var number: Int32 = 0
            while sigwait(&set, &number) != 0 {}
            received.withLock { $0 = number }
            onSignal()
        }
    }

    /// The signal that arrived, such as "SIGTERM".
    public var signalName: String {
        switch received.withLock({ $0 }) {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGHUP: "SIGHUP"
        case let number: "signal \(number)"
        }
    }
}

/// Detaches a daemon from its terminal.
public enum Daemonizer {
    /// Forks twice with `setsid` in between, so the daemon has no controlling terminal and is
    /// not a session leader, and runs `body` in the grandchild with the working directory `/`
    /// and standard input and output on /dev/null. Standard error stays open for the log.
    ///
    /// The original process waits until `body` calls its `ready` argument: with nil it returns
    /// 0, with an error message (which `body` has printed) it returns 1. The grandchild returns
    /// what `body` returns. Call it before the process starts any thread.
    public static func detach(_ body: (_ ready: (String?) -> Void) -> Int32) -> Int32 {
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else {
            StandardError.write("modkit host: error: cannot create a pipe: \(Errno(errno))\n")
            return 1
        }
        let (readEnd, writeEnd) = (descriptors[0], descriptors[1])
        let child = fork()
        guard child >= 0 else {
            StandardError.write("modkit host: error: cannot fork: \(Errno(errno))\n")
            return 1
        }
        if child > 0 {
            close(writeEnd)
            return waitForReadiness(readEnd, child: child)
        }

        close(readEnd)
        _ = setsid()
        let grandchild = fork()
        if grandchild != 0 { _exit(grandchild > 0 ? 0 : 1) }
        _ = chdir("/")
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            dup2(null, STDIN_FILENO)
            dup2(null, STDOUT_FILENO)
            if null > STDERR_FILENO { close(null) }
        }
        closeInheritedDescriptors(except: writeEnd)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        return body { error in
            let text = Array((error ?? "ready").utf8)
            _ = write(writeEnd, text, text.count)
            close(writeEnd)
        }
    }

    /// Closes every descriptor above standard error except `kept`. A descriptor the daemon
    /// inherited would keep its other end open for as long as the daemon runs. A parent that
    /// watches a pipe for the end of its child would then wait for the daemon too.
    private static func closeInheritedDescriptors(except kept: Int32) {
        var open: [Int32] = []
        if let directory = opendir("/proc/self/fd") {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if let descriptor = Int32(name) { open.append(descriptor) }
            }
            let own = dirfd(directory)
            closedir(directory)
            open.removeAll { $0 == own }
        } else {
            open = Array(0 ..< 1024)
        }
        for descriptor in open where descriptor > STDERR_FILENO && descriptor != kept {
            close(descriptor)
        }
    }

    private static func waitForReadiness(_ readEnd: Int32, child: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        var text: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            let count = read(readEnd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            text.append(contentsOf: buffer[..<count])
        }
        close(readEnd)
        if text == Array("ready".utf8) { return 0 }
        if text.isEmpty { StandardError.write("modkit host: error: the daemon exited during startup\n") }
        return 1
    }
}
