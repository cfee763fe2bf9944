import Glibc
import ModKit

/// `modkit host`: the daemon that owns loaded modules and serves the kmod tools.
struct HostCommand: Command {
    static let name = "host"
    static let summary = "run the daemon that loads and removes modules for the other tools"
    static let usage = "modkit host [--socket PATH] [--module-dir DIR] [--config FILE] [--daemon --pid-file FILE] [--max-image-size BYTES] [--shutdown-timeout SECONDS] [--read-timeout SECONDS] [--max-clients N] [--trust-dir DIR [--sig-enforce]]"
    static let discussion = """
        Runs one module host in this process and serves insmod, rmmod, lsmod, modprobe, call,
        dmesg and status over a Unix stream socket. The socket is PATH, else $MODKIT_SOCKET,
        else /run/modkit/modkit.sock for root and $XDG_RUNTIME_DIR/modkit.sock for other
        users. It is created with mode 0600, and only this user and root are served.

        Module and daemon messages go to a ring buffer that 'modkit dmesg' reads, and to
        standard error up to the info level. SIGTERM or SIGINT removes every module, users
        before the modules they use, waiting up to the shutdown timeout for references to
        drop, and then removes the socket.

        With --trust-dir DIR the daemon checks each module's signature against the
        certificates in DIR. A module without a trusted signature loads with Linux's
        'module verification failed' warning and taints the daemon (E), or with --sig-enforce
        is rejected. A signature that does not match its module is always rejected. Without
        --trust-dir no signature is checked, but a malformed signature trailer is still
        rejected.

        --module-dir and --config are the defaults that modprobe and modinfo use when they get
        no directory or configuration of their own; the daemon checks that they exist and
        reports them.
        """
    static let options = [
        OptionDefinition(long: "socket", valueName: "PATH", help: "listen on this socket path"),
        OptionDefinition(long: "module-dir", valueName: "DIR", help: "the module directory reported to modprobe and modinfo"),
        OptionDefinition(long: "config", valueName: "FILE", help: "the modprobe.d-format file or directory reported to modprobe"),
        OptionDefinition(long: "daemon", help: "detach from the terminal (double fork, setsid); needs --pid-file"),
        OptionDefinition(long: "pid-file", valueName: "FILE", help: "write the daemon's process ID to FILE, removed at exit"),
        OptionDefinition(long: "max-image-size", valueName: "BYTES", help: "reject module images larger than this (default 67108864, 64 MiB)"),
        OptionDefinition(long: "shutdown-timeout", valueName: "SECONDS", help: "at shutdown, wait this long for references to drop (default 10)"),
        OptionDefinition(long: "read-timeout", valueName: "SECONDS", help: "drop a client that takes longer to send a request or to read a reply (default 10)"),
        OptionDefinition(long: "max-clients", valueName: "N", help: "serve at most N connections at once (default 64)"),
    ] + SignatureOptions.definitions

    var configuration: DaemonConfiguration
    let signatures: SignatureOptions
    let detaches: Bool
    let pidFile: String?

    init(arguments: ParsedArguments) throws(UsageError) {
        try Self.rejectOperands(arguments)
        let workingDirectory = Self.currentDirectory()
        func absolute(_ path: String) -> String {
            path.hasPrefix("/") ? path : workingDirectory + "/" + path
        }

        guard let socketPath = arguments.value("socket") ?? DaemonSocketPath.defaultPath() else {
            throw UsageError(DaemonSocketPath.missingDefault)
        }
        configuration = DaemonConfiguration(socketPath: absolute(socketPath))
        configuration.moduleDirectory = arguments.value("module-dir").map(absolute)
        configuration.configFile = arguments.value("config").map(absolute)
        configuration.version = VersionCommand.version
        if let text = arguments.value("max-image-size") {
            guard let bytes = Int(text), bytes > 0 else {
                throw UsageError("invalid value '\(text)' for --max-image-size; expected a positive number of bytes")
            }
            configuration.maxImageSize = min(bytes, Int(UInt32.max) - DaemonProtocol.loadRequestOverhead)
        }
        configuration.shutdownTimeout = try Self.seconds(arguments.value("shutdown-timeout"), option: "shutdown-timeout") ?? .seconds(10)
        configuration.readTimeout = try Self.seconds(arguments.value("read-timeout"), option: "read-timeout", allowsZero: false) ?? .seconds(10)
        configuration.maxClients = try arguments.integer("max-clients", default: configuration.maxClients)
        signatures = try SignatureOptions(arguments: arguments)
        configuration.signatureEnforced = signatures.enforced
        detaches = arguments.contains("daemon")
        pidFile = arguments.value("pid-file").map(absolute)
        if detaches && pidFile == nil {
            throw UsageError("--daemon needs --pid-file FILE, so that the detached daemon can be found and stopped")
        }
    }

    private static func seconds(_ text: String?, option: String, allowsZero: Bool = true) throws(UsageError) -> Duration? {
        guard let text else { return nil }
        guard let value = Double(text), value.isFinite, value > 0 || (allowsZero && value == 0) else {
            let expected = allowsZero ? "a number of seconds" : "a positive number of seconds"
            throw UsageError("invalid value '\(text)' for --\(option); expected \(expected)")
        }
        return .milliseconds(Int64(value * 1000))
    }

    private static func currentDirectory() -> String {
        guard let path = getcwd(nil, 0) else { return "." }
        defer { free(path) }
        return String(cString: path)
    }

    func run() -> Int32 {
        if let failure = checkSettings() { return Self.fail(failure) }
        var command = self
        do {
            command.configuration.trustedCertificates = try signatures.certificates()
        } catch {
            return Self.fail("\(error)")
        }
        if detaches {
            return Daemonizer.detach { ready in command.serve(ready: ready) }
        }
        return command.serve(ready: { _ in })
    }

    private static func fail(_ message: String) -> Int32 {
        reportError(message)
        return ExitStatus.failure
    }

    /// Checks the module directory and configuration before binding anything.
    private func checkSettings() -> String? {
        if let directory = configuration.moduleDirectory {
            var status = stat()
            guard stat(directory, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
                return "module directory '\(directory)' does not exist or is not a directory"
            }
        }
        if let file = configuration.configFile {
            do {
                _ = try ModprobeConfiguration(contentsOf: file)
            } catch {
                return "invalid --config: \(error)"
            }
        }
        return nil
    }

    /// Binds the socket, reports readiness (nil) or the startup error through `ready`, serves
    /// until SIGTERM or SIGINT, and shuts down.
    private func serve(ready: (String?) -> Void) -> Int32 {
        // Every thread inherits this mask, so the signals reach only `sigwait` below.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)

        if let error = prepareSocketDirectory() {
            ready(error)
            return Self.fail(error)
        }
        let server: DaemonServer
        do {
            server = try DaemonServer(configuration: configuration)
        } catch {
            let message = "cannot listen on \(configuration.socketPath): \(error)"
            ready(message)
            return Self.fail(message)
        }
        if let pidFile, let error = Self.writePidFile(pidFile) {
            unlink(configuration.socketPath)
            ready(error)
            return Self.fail(error)
        }

        let received = SignalWaiter(signals: signals)
        do {
            try received.start { server.requestStop() }
        } catch {
            unlink(configuration.socketPath)
            if let pidFile { unlink(pidFile) }
            ready("\(error)")
            return Self.fail("\(error)")
        }
        do {
            try server.host.installCrashReports()
        } catch {
            writeToStandardError("modkit host: warning: crash reports are off, because installing their signal handler failed: \(error)\n")
        }
        ready(nil)
        server.run()
        server.shutDown(reason: "received \(received.signalName)")
        if let pidFile { unlink(pidFile) }
        return ExitStatus.success
    }

    /// Creates `/run/modkit` (mode 0700) when the default root socket path is used.
    private func prepareSocketDirectory() -> String? {
        let directory = String(configuration.socketPath[..<(configuration.socketPath.lastIndex(of: "/") ?? configuration.socketPath.startIndex)])
        guard !directory.isEmpty, access(directory, F_OK) != 0 else { return nil }
        guard directory == "/run/modkit" else { return "socket directory '\(directory)' does not exist; create it first" }
        guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
            return "cannot create socket directory '\(directory)': \(Errno(errno))"
        }
        return nil
    }

    private static func writePidFile(_ path: String) -> String? {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return "cannot write pid file '\(path)': \(Errno(errno))" }
        defer { close(descriptor) }
        let text = Array("\(getpid())\n".utf8)
        guard write(descriptor, text, text.count) == text.count else { return "cannot write pid file '\(path)': \(Errno(errno))" }
        return nil
    }
}
