import Foundation

/// How a child process ended and what it printed.
struct ProcessResult: CustomStringConvertible, Sendable {
    var command: [String]
    /// The exit status, or 128 plus the signal number when a signal ended the process, as
    /// shells report it.
    var status: Int32
    /// The signal that ended the process, if one did.
    var signal: Int32?
    var standardOutput: String
    var standardError: String
    var timedOut: Bool

    /// The command, how it ended and the last lines of its output, for failure messages.
    var description: String {
        var text = "$ \(command.joined(separator: " "))\n"
        if timedOut { text += "timed out and was killed\n" }
        if let signal { text += "killed by signal \(signal)\n" } else { text += "exit status \(status)\n" }
        text += "--- stdout (last 40 lines) ---\n\(Self.lastLines(standardOutput, 40))"
        text += "--- stderr (last 40 lines) ---\n\(Self.lastLines(standardError, 40))"
        return text
    }

    private static func lastLines(_ text: String, _ count: Int) -> String {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(count)
        let joined = lines.joined(separator: "\n")
        return joined.hasSuffix("\n") || joined.isEmpty ? joined : joined + "\n"
    }
}

struct SubprocessError: Error, CustomStringConvertible {
    var description: String
}

/// Runs `executable` with `arguments` and waits for it without blocking a thread of the
/// concurrency pool. Standard output and standard error go to files in a temporary directory
/// rather than pipes, so a child that writes a lot can never block on a full pipe. Standard
/// input is /dev/null. After `timeout` the child is killed and `timedOut` is set.
func runProcess(_ executable: String, _ arguments: [String], currentDirectory: String? = nil,
                environment: [String: String]? = nil, timeout: Duration = .seconds(600)) async throws -> ProcessResult {
    let outputDirectory = try TemporaryDirectory(prefix: "process")
    defer { outputDirectory.remove() }
    let outputPath = outputDirectory.path + "/stdout"
    let errorPath = outputDirectory.path + "/stderr"
    FileManager.default.createFile(atPath: outputPath, contents: nil)
    FileManager.default.createFile(atPath: errorPath, contents: nil)

    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    if let environment { process.environment = environment }
    let outputHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
    let errorHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
    defer {
        try? outputHandle.close()
        try? errorHandle.close()
    }
    process.standardOutput = outputHandle
    process.standardError = errorHandle
    process.standardInput = FileHandle.nullDevice

    let watchdog = Watchdog()
    let launchError: String? = await withCheckedContinuation { continuation in
        process.terminationHandler = { _ in
            watchdog.markExited()
            continuation.resume(returning: nil)
        }
        do {
            try process.run()
            watchdog.start(processIdentifier: process.processIdentifier, after: timeout)
        } catch {
            process.terminationHandler = nil
            continuation.resume(returning: "\(error)")
        }
    }
    watchdog.cancel()
    if let launchError {
        throw SubprocessError(description: "cannot run \(executable): \(launchError)")
    }

    let killedBySignal = process.terminationReason == .uncaughtSignal
    return ProcessResult(
        command: [executable] + arguments,
        status: killedBySignal ? 128 + process.terminationStatus : process.terminationStatus,
        signal: killedBySignal ? process.terminationStatus : nil,
        standardOutput: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "",
        standardError: (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "",
        timedOut: watchdog.fired)
}

/// Kills a child process that runs longer than its timeout.
private final class Watchdog: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<Void, Never>?
    private var exited = false
    private var didFire = false

    var fired: Bool { lock.withLock { didFire } }

    func start(processIdentifier: Int32, after timeout: Duration) {
        let task = Task { [self] in
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled else { return }
            // NOTE: Foundation reaps the child just before it calls the termination handler,
            // so a kill in that short window could reach a reused process identifier.
            lock.withLock {
                guard !exited else { return }
                didFire = true
                kill(processIdentifier, SIGKILL)
            }
        }
        lock.withLock { self.task = task }
    }

    func markExited() {
        lock.withLock { exited = true }
    }

    func cancel() {
        lock.withLock { task }?.cancel()
    }
}
