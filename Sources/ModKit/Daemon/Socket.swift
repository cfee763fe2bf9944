import Glibc

/// A failed socket operation: the call, the path it was about (if any) and the errno.
public struct SocketError: Error, CustomStringConvertible, Sendable {
    /// The system call or step that failed: "connect", "bind", "receive".
    public var operation: String
    public var path: String?
    public var errno: Errno

    public init(_ operation: String, path: String? = nil, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = Errno(errno)
    }

    public var description: String {
        if let path { return "\(operation) \(path): \(errno)" }
        return "\(operation): \(errno)"
    }
}

/// The credentials of the process at the other end of a Unix socket, as the kernel recorded
/// them when it connected (`SO_PEERCRED`).
public struct PeerCredentials: Sendable, Equatable {
    public var pid: pid_t
    public var uid: uid_t
    public var gid: gid_t
}

/// A Unix stream socket: every call of the daemon and its clients goes through here, each
/// retried on `EINTR`, with `MSG_NOSIGNAL` so a vanished peer is an error instead of `SIGPIPE`.
public final class UnixSocket: @unchecked Sendable {
    public let descriptor: Int32
    private var isClosed = false

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        if !isClosed { Glibc.close(descriptor) }
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(descriptor)
    }

    /// Stops further receives, which wakes a thread blocked in one with end of file.
    public func shutdownReceiving() {
        _ = Glibc.shutdown(descriptor, Int32(SHUT_RD))
    }

    /// Stops further sends; the peer reads end of file.
    public func shutdownSending() {
        _ = Glibc.shutdown(descriptor, Int32(SHUT_WR))
    }

    // MARK: Creating

    private static func makeSocket() throws(SocketError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket", errno: errno) }
        return fd
    }

    /// Fills a `sockaddr_un` for `path`, which must fit in `sun_path` with its NUL.
    private static func withAddress<R>(_ path: String, operation: String,
                                       _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) throws(SocketError) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw SocketError(operation, path: path, errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// Connects to the socket at `path`.
    public static func connect(to path: String) throws(SocketError) -> UnixSocket {
        let fd = try makeSocket()
        let socket = UnixSocket(descriptor: fd)
        let result = try withAddress(path, operation: "connect") { address, length in
            retryingOnInterrupt { Glibc.connect(fd, address, length) }
        }
        // A connect interrupted by a signal goes on in the background; a retry then reports EISCONN.
        guard result == 0 || errno == EISCONN else { throw SocketError("connect", path: path, errno: errno) }
        return socket
    }

    /// Creates a listening socket at `path` that only its owner can open (mode `mode`).
    ///
    /// The umask is narrowed around `bind`, so the file never exists with a wider mode, and
    /// the mode is then set and read back, so a file system that ignores the umask is caught.
    /// The umask is process-wide, so call this before other threads create files.
    /// A stale socket file at `path` that no process listens on is replaced, and a live one is an error.
    public static func listen(at path: String, mode: mode_t = 0o600, backlog: Int32 = 64) throws(SocketError) -> UnixSocket {
        try removeStaleSocket(at: path)
        let fd = try makeSocket()
        let socket = UnixSocket(descriptor: fd)

        let previousMask = umask(~mode & 0o777)
        let bound = try withAddress(path, operation: "bind") { address, length in Glibc.bind(fd, address, length) }
        let bindErrno = errno
        umask(previousMask)
        guard bound == 0 else { throw SocketError("bind", path: path, errno: bindErrno) }

        guard chmod(path, mode) == 0 else { throw SocketError("chmod", path: path, errno: errno) }
        var status = stat()
        guard lstat(path, &status) == 0 else { throw SocketError("stat", path: path, errno: errno) }
        guard status.st_mode & 0o777 == mode, status.st_uid == geteuid() else {
            unlink(path)
            throw SocketError("verify the mode of", path: path, errno: EPERM)
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            unlink(path)
            throw SocketError("listen", path: path, errno: errno)
        }
        return socket
    }

    /// Removes `path` if it is a socket that rejects connections. Throws `EADDRINUSE` if a
    /// process still listens on it, and `EEXIST` if it is some other kind of file.
    private static func removeStaleSocket(at path: String) throws(SocketError) {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        guard status.st_mode & S_IFMT == S_IFSOCK else { throw SocketError("bind", path: path, errno: EEXIST) }
        do throws(SocketError) {
            let live = try connect(to: path)
            live.close()
        } catch {
            guard error.errno.rawValue == ECONNREFUSED || error.errno.rawValue == ENOENT else { throw error }
            unlink(path)
            return
        }
        throw SocketError("bind", path: path, errno: EADDRINUSE)
    }

    /// Waits for a connection; returns nil when `wakeDescriptor` became readable first.
    public func accept(orWakeOn wakeDescriptor: Int32) throws(SocketError) -> UnixSocket? {
        while true {
            var fds = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakeDescriptor, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                throw SocketError("poll", errno: errno)
            }
            if fds[1].revents != 0 { return nil }
            let fd = Glibc.accept(descriptor, nil, nil)
            if fd >= 0 {
                // Glibc's accept4 is not visible to Swift; no other thread forks, so setting
                // close-on-exec afterwards leaves no window.
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                return UnixSocket(descriptor: fd)
            }
            switch errno {
            case EINTR, EAGAIN, ECONNABORTED, EPROTO:
                continue
            default:
                throw SocketError("accept", errno: errno)
            }
        }
    }

    /// Returns the peer's credentials (`SO_PEERCRED`).
    public func peerCredentials() throws(SocketError) -> PeerCredentials {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }, which Glibc does not export to Swift.
        var credentials: (pid: Int32, uid: UInt32, gid: UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        guard getsockopt(descriptor, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 else {
            throw SocketError("getsockopt SO_PEERCRED", errno: errno)
        }
        return PeerCredentials(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid)
    }

    /// Makes a send that cannot make progress for `timeout` fail with `EAGAIN`
    /// (`SO_SNDTIMEO`), so a peer that stops reading cannot block the sender forever.
    public func setSendTimeout(_ timeout: Duration) {
        let microseconds = max(timeout.nanoseconds / 1000, 1)
        var value = timeval(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
        _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    // MARK: Sending

    /// Sends all of `bytes`, and `descriptorToPass` with the first byte (`SCM_RIGHTS`).
    public func send(_ bytes: UnsafeRawBufferPointer, passing descriptorToPass: Int32? = nil) throws(SocketError) {
        var offset = 0
        if let descriptorToPass, !bytes.isEmpty {
            offset = try sendWithDescriptor(bytes, descriptorToPass)
        }
        while offset < bytes.count {
            let sent = Glibc.send(descriptor, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if sent < 0 {
                if errno == EINTR { continue }
                throw SocketError("send", errno: errno)
            }
            offset += sent
        }
    }

    public func send(_ bytes: [UInt8], passing descriptorToPass: Int32? = nil) throws(SocketError) {
        let result: Result<Void, SocketError> = bytes.withUnsafeBytes { buffer in
            do throws(SocketError) {
                try send(buffer, passing: descriptorToPass)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Space for one `cmsghdr` carrying one `int`, aligned as `CMSG_SPACE(sizeof(int))`.
    private static let controlSpace = align(MemoryLayout<cmsghdr>.size) + align(MemoryLayout<Int32>.size)

    private static func align(_ size: Int) -> Int {
        let unit = MemoryLayout<Int>.size
        return (size + unit - 1) & ~(unit - 1)
    }

    private func sendWithDescriptor(_ bytes: UnsafeRawBufferPointer, _ passed: Int32) throws(SocketError) -> Int {
        let control = UnsafeMutableRawPointer.allocate(byteCount: Self.controlSpace, alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0, count: Self.controlSpace)
        let header = control.bindMemory(to: cmsghdr.self, capacity: 1)
        header.pointee.cmsg_len = Int(Self.align(MemoryLayout<cmsghdr>.size) + MemoryLayout<Int32>.size)
        header.pointee.cmsg_level = SOL_SOCKET
        header.pointee.cmsg_type = Int32(SCM_RIGHTS)
        control.storeBytes(of: passed, toByteOffset: Self.align(MemoryLayout<cmsghdr>.size), as: Int32.self)

        var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
        while true {
            let sent = withUnsafeMutablePointer(to: &vector) { vectorPointer in
                var message = msghdr(msg_name: nil, msg_namelen: 0, msg_iov: vectorPointer, msg_iovlen: 1,
                                     msg_control: control, msg_controllen: Self.controlSpace, msg_flags: 0)
                return sendmsg(descriptor, &message, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                if errno == EINTR { continue }
                throw SocketError("sendmsg", errno: errno)
            }
            return sent
        }
    }

    // MARK: Receiving

    /// Receives exactly `count` bytes into `buffer` before `deadline`.
    ///
    /// Returns false if the peer closed the connection before the first byte; throws
    /// `ETIMEDOUT` at the deadline and `ECONNRESET` for a close in the middle. A descriptor the
    /// peer passed with `SCM_RIGHTS` is stored in `receivedDescriptor` (the caller closes it).
    public func receive(into buffer: UnsafeMutableRawBufferPointer, deadline: ContinuousClock.Instant?,
                        receivedDescriptor: UnsafeMutablePointer<Int32>? = nil) throws(SocketError) -> Bool {
        var offset = 0
        while offset < buffer.count {
            try waitReadable(until: deadline)
            let received = receiveOnce(buffer.baseAddress! + offset, buffer.count - offset, receivedDescriptor)
            if received < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw SocketError("receive", errno: errno)
            }
            if received == 0 {
                if offset == 0 { return false }
                throw SocketError("receive", errno: ECONNRESET)
            }
            offset += received
        }
        return true
    }

    /// Receives exactly `count` bytes as an array; returns nil if the peer closed the connection
    /// before the first byte. See `receive(into:deadline:receivedDescriptor:)`.
    public func receive(count: Int, deadline: ContinuousClock.Instant?,
                        receivedDescriptor: UnsafeMutablePointer<Int32>? = nil) throws(SocketError) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        let result: Result<Bool, SocketError> = bytes.withUnsafeMutableBytes { buffer in
            do throws(SocketError) {
                return .success(try receive(into: buffer, deadline: deadline, receivedDescriptor: receivedDescriptor))
            } catch {
                return .failure(error)
            }
        }
        return try result.get() || count == 0 ? bytes : nil
    }

    /// Receives exactly `count` bytes like `receive(count:deadline:receivedDescriptor:)`, but
    /// grows the array by at most `chunkSize` bytes at a time as the data arrives. A peer that
    /// announces more bytes than it sends then costs only the memory for what it sent.
    public func receiveGrowing(count: Int, chunkSize: Int = 1 << 20, deadline: ContinuousClock.Instant?,
                               receivedDescriptor: UnsafeMutablePointer<Int32>? = nil) throws(SocketError) -> [UInt8]? {
        var bytes: [UInt8] = []
        while bytes.count < count {
            let received = bytes.count
            guard let chunk = try receive(count: min(count - received, chunkSize), deadline: deadline,
                                          receivedDescriptor: receivedDescriptor) else {
                // End of file before the first byte is a clean close, and after it a broken frame.
                if received == 0 { return nil }
                throw SocketError("receive", errno: ECONNRESET)
            }
            if received == 0 { bytes = chunk } else { bytes += chunk }
        }
        return bytes
    }

    /// Receives what is available, up to `max` bytes, waiting until `deadline` for the first
    /// byte. Returns an empty array at end of file.
    public func receiveAvailable(max: Int, deadline: ContinuousClock.Instant?) throws(SocketError) -> [UInt8] {
        try waitReadable(until: deadline)
        var bytes = [UInt8](repeating: 0, count: max)
        while true {
            let count = bytes.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw SocketError("receive", errno: errno) }
            return Array(bytes[..<count])
        }
    }

    private func receiveOnce(_ start: UnsafeMutableRawPointer, _ count: Int, _ receivedDescriptor: UnsafeMutablePointer<Int32>?) -> Int {
        guard let receivedDescriptor else { return recv(descriptor, start, count, 0) }

        let control = UnsafeMutableRawPointer.allocate(byteCount: Self.controlSpace, alignment: MemoryLayout<cmsghdr>.alignment)
        defer { control.deallocate() }
        control.initializeMemory(as: UInt8.self, repeating: 0, count: Self.controlSpace)
        var vector = iovec(iov_base: start, iov_len: count)
        var message = msghdr()
        let received = withUnsafeMutablePointer(to: &vector) { vectorPointer in
            message = msghdr(msg_name: nil, msg_namelen: 0, msg_iov: vectorPointer, msg_iovlen: 1,
                             msg_control: control, msg_controllen: Self.controlSpace, msg_flags: 0)
            return recvmsg(descriptor, &message, Int32(MSG_CMSG_CLOEXEC))
        }
        guard received > 0, message.msg_controllen >= MemoryLayout<cmsghdr>.size else { return received }
        let header = control.load(as: cmsghdr.self)
        let dataOffset = Self.align(MemoryLayout<cmsghdr>.size)
        if header.cmsg_level == SOL_SOCKET, header.cmsg_type == Int32(SCM_RIGHTS), header.cmsg_len >= dataOffset {
            // The buffer has room for two descriptors because CMSG_SPACE rounds up, and the
            // kernel installs as many as fit. Only one is expected per request: the first is
            // kept, and every other one is closed at once.
            let count = min(header.cmsg_len - dataOffset, Self.controlSpace - dataOffset) / MemoryLayout<Int32>.size
            for index in 0 ..< count {
                let passed = control.load(fromByteOffset: dataOffset + index * MemoryLayout<Int32>.size, as: Int32.self)
                if receivedDescriptor.pointee >= 0 { Glibc.close(passed) } else { receivedDescriptor.pointee = passed }
            }
        }
        return received
    }

    /// Waits until the socket is readable or throws `ETIMEDOUT` at `deadline`.
    public func waitReadable(until deadline: ContinuousClock.Instant?) throws(SocketError) {
        while true {
            var timeout: Int32 = -1
            if let deadline {
                let left = deadline - .now
                guard left > .zero else { throw SocketError("receive", errno: ETIMEDOUT) }
                let milliseconds = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
                timeout = Int32(clamping: max(milliseconds, 1))
            }
            var fds = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 1, timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                throw SocketError("poll", errno: errno)
            }
            if ready > 0 { return }
        }
    }

    /// Returns whether the peer has closed its end: the socket reads as end of file or has hung up.
    public func peerHasClosed() -> Bool {
        var fds = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)]
        guard poll(&fds, 1, 0) > 0 else { return false }
        if fds[0].revents & Int16(POLLHUP | POLLERR) != 0 { return true }
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 0
    }
}

/// Calls `body` again while it fails with `EINTR`.
func retryingOnInterrupt(_ body: () -> Int32) -> Int32 {
    while true {
        let result = body()
        if result < 0 && errno == EINTR { continue }
        return result
    }
}
