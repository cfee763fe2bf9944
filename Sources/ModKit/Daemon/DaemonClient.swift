import Glibc

/// The reason a client could not get a reply.
public enum ClientError: Error, CustomStringConvertible, Sendable {
    /// No daemon listens at the path, or the socket cannot be opened.
    case unreachable(path: String, SocketError)
    /// The connection broke or timed out in the middle of a request.
    case connectionLost(SocketError)
    /// The daemon sent something this client does not understand, or rejected the frame.
    case protocolViolation(ProtocolError)

    public var description: String {
        switch self {
        case .unreachable(_, let error): "\(error)"
        case .connectionLost(let error): "connection to the daemon lost: \(error)"
        case .protocolViolation(let error): "invalid reply from the daemon: \(error.message)"
        }
    }
}

/// The socket path that clients and the daemon use by default.
public enum DaemonSocketPath {
    /// `MODKIT_SOCKET` if set; otherwise `/run/modkit/modkit.sock` for root and
    /// `$XDG_RUNTIME_DIR/modkit.sock` for other users. Nil when none applies.
    public static func defaultPath() -> String? {
        if let override = environment("MODKIT_SOCKET") { return override }
        if geteuid() == 0 { return "/run/modkit/modkit.sock" }
        if let runtime = environment("XDG_RUNTIME_DIR") { return runtime + "/modkit.sock" }
        return nil
    }

    /// The error text for a user without a default path.
    public static let missingDefault = "no socket path: XDG_RUNTIME_DIR is not set; set MODKIT_SOCKET or pass --socket PATH"

    /// Returns the value of an environment variable, or nil when it is unset or empty.
    public static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }
}

/// A connection to `modkit host`.
public final class DaemonClient: @unchecked Sendable {
    public let path: String
    private let socket: UnixSocket
    /// How long to wait for each reply frame; nil waits without limit (for `rmmod -w`, `dmesg -w`).
    public var replyTimeout: Duration?
    /// The largest reply payload accepted.
    public var maxReplyPayload = 256 << 20

    public init(path: String, replyTimeout: Duration? = nil) throws(ClientError) {
        self.path = path
        self.replyTimeout = replyTimeout
        do {
            socket = try UnixSocket.connect(to: path)
        } catch {
            throw .unreachable(path: path, error)
        }
    }

    /// Sends `request` and returns its reply; `descriptor` travels with it (`SCM_RIGHTS`).
    ///
    /// A daemon that rejects the connection or the request replies and closes at once, which
    /// can make the rest of the request fail to send. The reply then still waits to be read,
    /// so a failed send is reported only when no reply follows.
    public func send(_ request: Request, passing descriptor: Int32? = nil) throws(ClientError) -> Reply {
        do {
            try sendRequest(request, passing: descriptor)
        } catch {
            guard let (type, payload) = try? receiveFrame(), type == .reply, let reply = try? Reply(payload: payload[...]) else {
                throw error
            }
            return reply
        }
        while true {
            let (type, payload) = try receiveFrame()
            if type == .reply {
                do {
                    return try Reply(payload: payload[...])
                } catch {
                    throw .protocolViolation(error)
                }
            }
            throw .protocolViolation(ProtocolError("unexpected \(type) frame in reply to \(request.type)"))
        }
    }

    /// Sends a `readLog` request and passes each batch of records to `onRecords`. Returns the
    /// final reply, which comes once the log is read, or with `follow` when the daemon stops.
    public func readLog(follow: Bool, onRecords: ([LogEntry]) -> Void) throws(ClientError) -> Reply {
        try sendRequest(.readLog(follow: follow), passing: nil)
        while true {
            let (type, payload) = try receiveFrame()
            do {
                switch type {
                case .reply:
                    return try Reply(payload: payload[...])
                case .logRecords:
                    let fields = try Fields(decoding: payload[...])
                    var entries: [LogEntry] = []
                    for record in try fields.records(.record) { entries.append(try LogEntry(record)) }
                    onRecords(entries)
                default:
                    throw ProtocolError("unexpected \(type) frame in reply to readLog")
                }
            } catch let error as ProtocolError {
                throw .protocolViolation(error)
            } catch {
                throw .protocolViolation(ProtocolError("\(error)"))
            }
        }
    }

    /// Sends raw bytes, for tests that speak a broken protocol on purpose.
    public func sendRaw(_ bytes: [UInt8]) throws(ClientError) {
        do {
            try socket.send(bytes)
        } catch {
            throw .connectionLost(error)
        }
    }

    public func close() {
        socket.close()
    }

    private func sendRequest(_ request: Request, passing descriptor: Int32?) throws(ClientError) {
        let payload = request.encodedPayload().bytes
        let frame = FrameHeader(type: request.type, payloadLength: payload.count).encoded() + payload
        try sendRaw(frame, passing: descriptor)
    }

    private func sendRaw(_ bytes: [UInt8], passing descriptor: Int32?) throws(ClientError) {
        do {
            try socket.send(bytes, passing: descriptor)
        } catch {
            throw .connectionLost(error)
        }
    }

    /// Receives one whole frame.
    public func receiveFrame() throws(ClientError) -> (MessageType, [UInt8]) {
        let deadline = replyTimeout.map { ContinuousClock.now + $0 }
        let header: [UInt8]
        do throws(SocketError) {
            guard let bytes = try socket.receive(count: DaemonProtocol.headerSize, deadline: deadline) else {
                throw SocketError("receive", errno: ECONNRESET)
            }
            header = bytes
        } catch {
            throw .connectionLost(error)
        }

        let limit = maxReplyPayload
        let frame: FrameHeader
        do throws(ProtocolError) {
            frame = try header.withUnsafeBytes { buffer in
                Result { () throws(ProtocolError) in try FrameHeader.decode(buffer) { _ in limit } }
            }.get()
        } catch {
            throw .protocolViolation(error)
        }
        let payload: [UInt8]
        do throws(SocketError) {
            guard let bytes = try socket.receive(count: frame.payloadLength, deadline: deadline) else {
                throw SocketError("receive", errno: ECONNRESET)
            }
            payload = bytes
        } catch {
            throw .connectionLost(error)
        }
        return (frame.type, payload)
    }
}
