import Glibc

/// Settings of `modkit host`.
public struct DaemonConfiguration: Sendable {
    public var socketPath: String
    /// The default module directory of `modprobe` and `modinfo NAME`, which the daemon only
    /// reports.
    public var moduleDirectory: String?
    /// A modprobe.d-format file that `modprobe` applies by default, which the daemon only
    /// reports.
    public var configFile: String?
    /// The largest module image a load request may carry, in bytes.
    public var maxImageSize = 64 << 20
    /// How long a client may take to send one whole request, and how long a reply may wait
    /// for the client to read.
    public var readTimeout: Duration = .seconds(10)
    /// At shutdown, how long to wait in total for connections to finish and for module
    /// references to drop.
    public var shutdownTimeout: Duration = .seconds(10)
    /// Connections served at once; more are rejected with `EBUSY`.
    public var maxClients = 64
    /// The version `daemonInfo` reports.
    public var version = ""
    /// Log records kept for `dmesg`.
    public var logCapacity = 4096
    /// The host's `trustedCertificates` and `signatureEnforced` (`--trust-dir`, `--sig-enforce`).
    public var trustedCertificates: TrustedCertificates?
    public var signatureEnforced = false

    public init(socketPath: String) {
        self.socketPath = socketPath
    }
}

/// The server side of `modkit host`: one `ModuleHost`, a listening Unix socket, and a thread
/// per connection.
///
/// Only the daemon's own user and root are served: the socket file has mode 0600, and every
/// connection's peer credentials are checked as well.
public final class DaemonServer: @unchecked Sendable {
    public let configuration: DaemonConfiguration
    public let host: ModuleHost
    public let log: DaemonLog
    let ownerUID = geteuid()
    private let listener: UnixSocket
    /// Written to wake the accept loop for shutdown.
    private let wakePipe: (read: Int32, write: Int32)

    /// Guards `connections` and `shuttingDown`; signalled when a connection ends.
    private let connectionLock = ConditionLock()
    private var connections: [ObjectIdentifier: UnixSocket] = [:]
    private var shuttingDown = false

    /// One lock per module name with a load in progress, so that a second load of the same
    /// module waits for the first and then finds it loaded.
    let loadGates = LoadGates()

    /// Creates the host and binds the socket.
    public init(configuration: DaemonConfiguration) throws(SocketError) {
        self.configuration = configuration
        let log = DaemonLog(capacity: configuration.logCapacity)
        self.log = log
        var options = HostOptions()
        options.logHandler = { record in log.record(record) }
        options.trustedCertificates = configuration.trustedCertificates
        options.signatureEnforced = configuration.signatureEnforced
        host = ModuleHost(options: options)

        var pipeDescriptors: [Int32] = [0, 0]
        guard pipe(&pipeDescriptors) == 0 else { throw SocketError("pipe", errno: errno) }
        for descriptor in pipeDescriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        wakePipe = (pipeDescriptors[0], pipeDescriptors[1])
        do {
            listener = try UnixSocket.listen(at: configuration.socketPath)
        } catch {
            close(pipeDescriptors[0])
            close(pipeDescriptors[1])
            throw error
        }
    }

    deinit {
        close(wakePipe.read)
        close(wakePipe.write)
    }

    /// Accepts connections until `requestStop` is called.
    public func run() {
        log.log(5, module: nil, "listening on \(configuration.socketPath) (pid \(getpid()), uid \(ownerUID))")
        if let certificates = configuration.trustedCertificates {
            let mode = configuration.signatureEnforced ? "enforced" : "not enforced"
            let plural = certificates.count == 1 ? "" : "s"
            log.log(5, module: nil, "checking module signatures against \(certificates.count) trusted certificate\(plural) (\(mode))")
        }
        while true {
            let connection: UnixSocket?
            do {
                connection = try listener.accept(orWakeOn: wakePipe.read)
            } catch {
                log.log(3, module: nil, "accept failed: \(error); retrying in 100 ms")
                usleep(100_000)
                continue
            }
            guard let connection else { return }
            // A client that stops reading its replies is dropped like one that stops sending.
            connection.setSendTimeout(configuration.readTimeout)
            admit(connection)
        }
    }

    /// Makes `run` return. Safe to call from any thread, but not from a signal handler.
    public func requestStop() {
        var byte: UInt8 = 1
        _ = retryingOnInterrupt { Int32(write(wakePipe.write, &byte, 1)) }
    }

    /// Starts a thread for `connection`, or rejects it when the daemon is full or stopping.
    private func admit(_ connection: UnixSocket) {
        let rejection: String? = connectionLock.withLock {
            if shuttingDown { return "the daemon is shutting down" }
            if connections.count >= configuration.maxClients {
                return "the daemon is serving its maximum of \(configuration.maxClients) clients; try again later"
            }
            connections[ObjectIdentifier(connection)] = connection
            return nil
        }
        if let rejection {
            log.log(4, module: nil, "rejected a connection: \(rejection)")
            try? send(connection, status: EBUSY, message: rejection)
            // The accept loop drains it itself and may wait up to a second, because starting
            // a thread for a connection rejected for lack of threads would defeat the limit.
            drain(connection)
            return
        }
        do {
            try startDetachedThread { [self] in
                serve(connection)
                finish(connection)
            }
        } catch {
            log.log(3, module: nil, "rejected a connection: \(error)")
            try? send(connection, status: EAGAIN, message: "the daemon cannot start a thread for this connection: \(error)")
            finish(connection)
        }
    }

    /// Forgets and closes a connection. Both happen under the lock, so `shutDown` never shuts
    /// down a descriptor number that was closed and reused.
    private func finish(_ connection: UnixSocket) {
        connectionLock.withLock {
            connections[ObjectIdentifier(connection)] = nil
            connection.close()
            connectionLock.broadcast()
        }
    }

    // MARK: Serving a connection

    /// Serves requests until the client closes the connection or breaks the protocol.
    private func serve(_ connection: UnixSocket) {
        let peer: PeerCredentials
        do {
            peer = try connection.peerCredentials()
        } catch {
            log.log(3, module: nil, "rejected a connection: \(error)")
            return
        }
        guard peer.uid == ownerUID || peer.uid == 0 else {
            let served = ownerUID == 0 ? "root" : "uid \(ownerUID) and root"
            let message = "permission denied: this daemon serves only \(served), not uid \(peer.uid)"
            log.log(4, module: nil, "rejected a connection from pid \(peer.pid) uid \(peer.uid): only \(served) may connect")
            try? send(connection, status: EACCES, message: message)
            drain(connection)
            return
        }

        while true {
            var descriptor: Int32 = -1
            let request: Request?
            do {
                request = try receiveRequest(connection, descriptor: &descriptor)
            } catch let error as ProtocolError {
                closeDescriptor(&descriptor)
                log.log(4, module: nil, "rejected a request from pid \(peer.pid) uid \(peer.uid): \(error.message)")
                try? send(connection, status: error.status, message: error.message)
                drain(connection)
                return
            } catch {
                closeDescriptor(&descriptor)
                log.log(4, module: nil, "dropped the connection of pid \(peer.pid) uid \(peer.uid): \(error)")
                try? send(connection, status: (error as? SocketError)?.errno.rawValue ?? EIO, message: "\(error)")
                drain(connection)
                return
            }
            guard let request else { return }
            defer { closeDescriptor(&descriptor) }
            do {
                try handle(request, descriptor: descriptor, peer: peer, connection: connection)
            } catch {
                // The client went away before its reply was sent; nothing is left to clean up.
                return
            }
        }
    }

    /// Ends a connection whose request was rejected so that the client can still read the
    /// reply: closing a Unix socket with unread input resets it, and the reset discards the
    /// reply. Reads and drops at most 1 MiB for at most 1 second, then gives up.
    private func drain(_ connection: UnixSocket) {
        connection.shutdownSending()
        let deadline = ContinuousClock.now + .seconds(1)
        var dropped = 0
        while dropped < 1 << 20 {
            guard let bytes = try? connection.receiveAvailable(max: 64 << 10, deadline: deadline), !bytes.isEmpty else { return }
            dropped += bytes.count
        }
    }

    private func closeDescriptor(_ descriptor: inout Int32) {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    /// Reads one request frame. Returns nil when the client closed the connection between
    /// requests. The whole frame must arrive within the read timeout.
    private func receiveRequest(_ connection: UnixSocket, descriptor: inout Int32) throws -> Request? {
        // Between requests, a silent client is dropped after the same timeout.
        let deadline = ContinuousClock.now + configuration.readTimeout
        guard let header = try connection.receive(count: DaemonProtocol.headerSize, deadline: deadline,
                                                  receivedDescriptor: &descriptor) else { return nil }

        let maxImageSize = configuration.maxImageSize
        let frame = try header.withUnsafeBytes { buffer in
            Result { () throws(ProtocolError) in
                try FrameHeader.decode(buffer) { type in
                    type == .loadImage ? maxImageSize + DaemonProtocol.loadRequestOverhead : DaemonProtocol.maxSmallPayload
                }
            }
        }.get()
        guard frame.type.isRequest else {
            throw ProtocolError("message type \(frame.type) is a reply, not a request")
        }
        try checkDescriptor(descriptor, on: frame.type)
        // The buffer grows as bytes arrive, so a client whose length field lies about a large
        // load costs only what it sends.
        guard let payload = try connection.receiveGrowing(count: frame.payloadLength, deadline: deadline,
                                                          receivedDescriptor: &descriptor) else {
            throw ProtocolError("truncated request: the connection closed before the \(frame.payloadLength)-byte payload")
        }
        // A descriptor may also arrive with a byte of the payload.
        try checkDescriptor(descriptor, on: frame.type)
        return try Request(type: frame.type, payload: payload[...])
    }

    private func checkDescriptor(_ descriptor: Int32, on type: MessageType) throws(ProtocolError) {
        guard descriptor < 0 || type == .loadFile else {
            throw ProtocolError("a \(type) request cannot carry a file descriptor")
        }
    }

    /// Sends one frame.
    func send(_ connection: UnixSocket, type: MessageType = .reply, payload: FieldWriter) throws(SocketError) {
        let header = FrameHeader(type: type, payloadLength: payload.bytes.count).encoded()
        try connection.send(header + payload.bytes)
    }

    func send(_ connection: UnixSocket, status: Int32, message: String, fields: FieldWriter = FieldWriter()) throws(SocketError) {
        try send(connection, payload: Reply.encode(status: status, message: message, fields: fields))
    }

    // MARK: Shutdown

    /// Stops serving and removes every module, newest user first, waiting up to the shutdown
    /// timeout in total for connections to finish and references to drop. Then removes the
    /// socket file.
    public func shutDown(reason: String) {
        let deadline = ContinuousClock.now + configuration.shutdownTimeout
        log.log(5, module: nil, "shutting down: \(reason)")
        listener.close()
        log.close()

        let remaining: Int = connectionLock.withLock {
            shuttingDown = true
            for connection in connections.values { connection.shutdownReceiving() }
            while !connections.isEmpty {
                let left = deadline - .now
                if left <= .zero { break }
                connectionLock.wait(timeout: left)
            }
            return connections.count
        }
        if remaining > 0 {
            log.log(4, module: nil, "\(remaining) connections still busy at shutdown; removing modules anyway")
        }

        removeAllModules(deadline: deadline)
        unlink(configuration.socketPath)
        log.log(5, module: nil, "stopped")
    }

    /// Removes modules in reverse dependency order: a module goes once nothing uses it, the
    /// newest first. A module still in use at the deadline stays, and so do the modules it uses.
    private func removeAllModules(deadline: ContinuousClock.Instant) {
        var skipped = Set<String>()
        while true {
            let candidate: String? = host.registry.withLock { registry in
                registry.order.reversed().first { name in
                    guard let module = registry.modules[name] else { return false }
                    return module.users.isEmpty && !skipped.contains(name)
                }
            }
            guard let name = candidate else { break }
            let left = max(deadline - .now, .zero)
            do {
                try host.remove(name, wait: true, timeout: left)
            } catch {
                log.log(3, module: nil, "cannot remove module \(name) at shutdown: \(error.message); leaving it loaded")
                skipped.insert(name)
            }
        }
    }
}

/// Per-name locks for loads in progress.
final class LoadGates: @unchecked Sendable {
    private let lock = ConditionLock()
    /// Names with a load in progress; guarded by `lock`.
    private var busy: Set<String> = []

    /// Runs `body` while no other load of `name` runs.
    func withGate<R, E: Error>(_ name: String, _ body: () throws(E) -> R) throws(E) -> R {
        lock.withLock {
            while busy.contains(name) { lock.wait(timeout: nil) }
            busy.insert(name)
        }
        defer {
            lock.withLock {
                busy.remove(name)
                lock.broadcast()
            }
        }
        return try body()
    }
}
