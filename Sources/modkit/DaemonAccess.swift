import Glibc
import ModKit

/// A tool's failure: the lines to print after `modkit NAME: ` and the exit status.
struct ToolFailure: Error {
    var lines: [String]
    var status: Int32
    /// kmod's severity word: ERROR, or FATAL where modprobe uses it.
    var severity = "ERROR"

    init(_ lines: [String], status: Int32 = ExitStatus.failure, severity: String = "ERROR") {
        self.lines = lines
        self.status = status
        self.severity = severity
    }

    init(_ line: String, status: Int32 = ExitStatus.failure, severity: String = "ERROR") {
        self.init([line], status: status, severity: severity)
    }
}

extension Command {
    /// Prints `modkit NAME: ERROR: MESSAGE` (or another severity), kmod's format with the
    /// tool's name in front, and then `details` as they are.
    static func reportKmodError(_ message: String, details: String = "", severity: String = "ERROR") {
        var text = "modkit \(name): \(severity): \(message)\n"
        if !details.isEmpty { text += details.hasSuffix("\n") ? details : details + "\n" }
        writeToStandardError(text)
    }

    /// Prints a failure and returns its exit status.
    static func report(_ failure: ToolFailure) -> Int32 {
        guard let first = failure.lines.first else { return failure.status }
        reportKmodError(first, details: failure.lines.dropFirst().joined(separator: "\n"), severity: failure.severity)
        return failure.status
    }
}

/// The connection of a client tool to `modkit host`.
enum DaemonAccess {
    /// Returns the socket path the tools use: `MODKIT_SOCKET`, else the default for this user.
    static func socketPath() throws(ToolFailure) -> String {
        guard let path = DaemonSocketPath.defaultPath() else {
            throw ToolFailure(DaemonSocketPath.missingDefault, status: ExitStatus.noDaemon)
        }
        return path
    }

    /// Connects to the daemon. When no daemon accepts the connection, the failure carries a
    /// hint on how to start one.
    static func connect() throws(ToolFailure) -> DaemonClient {
        let path = try socketPath()
        do {
            return try DaemonClient(path: path)
        } catch {
            var lines = ["cannot connect to the modkit daemon: \(error)"]
            if case .unreachable(_, let socketError) = error, socketError.errno.rawValue == EACCES {
                lines.append("hint: the socket belongs to another user; run the tool as that user or as root")
            } else {
                let socketOption = DaemonSocketPath.environment("MODKIT_SOCKET").map { " --socket \($0)" } ?? ""
                lines.append("hint: start the daemon with 'modkit host\(socketOption) &' or 'modkit host\(socketOption) --daemon --pid-file FILE', or set MODKIT_SOCKET to its socket")
            }
            throw ToolFailure(lines, status: ExitStatus.noDaemon)
        }
    }

    /// Sends one request on a new connection and returns the reply. A reply that rejects the
    /// client itself (another user, another protocol version) becomes a failure here.
    static func send(_ request: Request, passing descriptor: Int32? = nil, on client: DaemonClient? = nil) throws(ToolFailure) -> Reply {
        let connection: DaemonClient
        if let client {
            connection = client
        } else {
            connection = try connect()
        }
        defer { if client == nil { connection.close() } }
        let reply: Reply
        do {
            reply = try connection.send(request, passing: descriptor)
        } catch {
            throw failure(error)
        }
        try checkAccepted(reply)
        return reply
    }

    static func failure(_ error: ClientError) -> ToolFailure {
        switch error {
        case .unreachable, .connectionLost:
            ToolFailure("\(error)", status: ExitStatus.noDaemon)
        case .protocolViolation:
            ToolFailure("\(error)", status: ExitStatus.rejected)
        }
    }

    /// Throws for a reply that rejects the connection rather than the request.
    static func checkAccepted(_ reply: Reply) throws(ToolFailure) {
        switch reply.status {
        case EACCES, EPROTONOSUPPORT, EPROTO:
            throw ToolFailure("the daemon rejected the request: \(reply.message)", status: ExitStatus.rejected)
        default:
            return
        }
    }

    /// Returns the daemon's settings, or nil if no daemon replies.
    static func daemonInfoIfRunning() -> DaemonInfo? {
        guard let path = try? socketPath(), let client = try? DaemonClient(path: path) else { return nil }
        defer { client.close() }
        guard let reply = try? client.send(.daemonInfo), reply.succeeded else { return nil }
        return try? DaemonInfo(reply.fields)
    }
}

/// kmod's text for an errno from loading a module (`init_module`).
func moduleErrorText(_ status: Int32) -> String {
    switch status {
    case ENOEXEC: "Invalid module format"
    case ENOENT: "Unknown symbol in module"
    case ESRCH: "Module has wrong symbol version"
    case EINVAL: "Invalid parameters"
    default: String(cString: strerror(status))
    }
}

/// Joins `PARAM=VALUE` arguments into one parameter string as insmod does, quoting a value
/// that contains a space.
func parameterString(_ arguments: [String]) -> String {
    arguments.map { argument in
        // A value the user already quoted (`name="a b"`) keeps its quotes.
        guard argument.contains(" "), !argument.contains("\""), let equals = argument.firstIndex(of: "=") else { return argument }
        return argument[...equals] + "\"" + argument[argument.index(after: equals)...] + "\""
    }.joined(separator: " ")
}

/// Returns the module name for a name or file name given to rmmod: no directory, no `.o`,
/// and `-` as `_`.
func moduleName(fromArgument argument: String) -> String {
    var base = Substring(argument.split(separator: "/").last ?? Substring(argument))
    if base.hasSuffix(".o") { base = base.dropLast(2) }
    return String(base.map { $0 == "-" ? "_" : $0 })
}

/// Reads a whole file for the tools; throws a failure naming the file.
func readFile(_ path: String) throws(ToolFailure) -> [UInt8] {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw ToolFailure("could not open '\(path)': \(Errno(errno))") }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { throw ToolFailure("could not read '\(path)': \(Errno(errno))") }
        if count == 0 { return bytes }
        bytes.append(contentsOf: chunk[..<count])
    }
}
