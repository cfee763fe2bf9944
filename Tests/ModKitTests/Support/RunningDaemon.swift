import Foundation
import ModKit

/// A `modkit host` started by a test on a socket in the test's own directory, and the tools
/// run against it.
final class RunningDaemon: @unchecked Sendable {
    let directory: TemporaryDirectory
    let socket: String
    let process: Process
    private let errorPath: String
    private let errorHandle: FileHandle

    /// Starts `modkit host --socket DIR/modkit.sock ARGUMENTS` and waits until it replies.
    init(in directory: TemporaryDirectory, arguments: [String] = []) async throws {
        self.directory = directory
        socket = directory.file("modkit.sock")
        errorPath = directory.file("host.stderr")
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        errorHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))

        process = Process()
        process.executableURL = URL(fileURLWithPath: try ModkitTool.executablePath())
        process.arguments = ["host", "--socket", socket] + arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errorHandle
        try process.run()
        try await Self.waitUntilAnswering(socket, while: { [process] in process.isRunning })
    }

    /// Waits until a daemon replies to a `daemonInfo` request at `socket`.
    static func waitUntilAnswering(_ socket: String, while alive: () -> Bool = { true }) async throws {
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline && alive() {
            if let client = try? DaemonClient(path: socket) {
                defer { client.close() }
                if let reply = try? client.send(.daemonInfo), reply.succeeded { return }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw SubprocessError(description: "modkit host did not answer at \(socket)")
    }

    /// The environment of a tool run: this process's, with `MODKIT_SOCKET` set to the daemon.
    var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["MODKIT_SOCKET"] = socket
        environment["MODKIT_MODULE_PATH"] = nil
        return environment
    }

    /// Runs `modkit ARGUMENTS` against this daemon.
    func run(_ arguments: [String], timeout: Duration = .seconds(120)) async throws -> ProcessResult {
        try await runProcess(ModkitTool.executablePath(), arguments, currentDirectory: directory.path, environment: environment,
                             timeout: timeout)
    }

    /// Everything the daemon wrote to standard error so far.
    var standardError: String {
        (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns its exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) async throws -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        let deadline = ContinuousClock.now + .seconds(60)
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                kill(process.processIdentifier, SIGKILL)
                throw SubprocessError(description: "modkit host did not stop within 60 s after signal \(signal)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        try? errorHandle.close()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Returns the lines of the daemon log that contain `filter` (all lines without one), without
/// their timestamps: `[    0.123456] info: hello: Hello` becomes `info: hello: Hello`.
func logLines(_ text: String, containing filter: String? = nil) -> [String] {
    text.split(separator: "\n").compactMap { line in
        guard let end = line.firstIndex(of: "]") else { return nil }
        let body = String(line[line.index(end, offsetBy: 2)...])
        if let filter { return body.contains(filter) ? body : nil }
        return body
    }
}

/// Builds the example module `NAME.c` of `examples/` into `directory/NAME.o` with `modkit
/// build`, as its Makefile does, against the Module.symvers of the examples built before it.
func compileExample(_ name: String, in directory: TemporaryDirectory) async throws -> String {
    let output = directory.file("\(name).o")
    let symvers = directory.file("Module.symvers")
    let against = FileManager.default.fileExists(atPath: symvers) ? ["--symvers", symvers] : []
    let result = try await ModkitTool.run(["build", "-o", output] + against + [PackagePaths.root + "/examples/\(name).c", "--", "-O2"])
    guard result.status == 0 else { throw SubprocessError(description: "modkit build of example \(name) failed\n\(result)") }
    return output
}

/// Returns the line of `lsmod` output that lists module `name`, or nil when it is not listed.
func lsmodLine(_ output: String, module name: String) -> Substring? {
    output.split(separator: "\n").first { $0.hasPrefix(name + " ") }
}
