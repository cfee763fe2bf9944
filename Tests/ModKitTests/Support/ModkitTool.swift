import Foundation

/// The built `modkit` executable, run as a child process.
enum ModkitTool {
    /// `$MODKIT_EXECUTABLE` if set, else `modkit` in the build products directory, which also
    /// contains the test bundle (`.build/debug/ModKitPackageTests.xctest`).
    static func executablePath() throws -> String {
        if let override = ProcessInfo.processInfo.environment["MODKIT_EXECUTABLE"], !override.isEmpty {
            return override
        }
        let testExecutable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let candidate = testExecutable.deletingLastPathComponent().appendingPathComponent("modkit").path
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw SubprocessError(description: "modkit executable not found at \(candidate); build it with 'swift build' (swift test builds it too) or set MODKIT_EXECUTABLE")
        }
        return candidate
    }

    /// Runs `modkit ARGUMENTS` and returns its exit status and output.
    static func run(_ arguments: [String], currentDirectory: String? = nil,
                    timeout: Duration = .seconds(600)) async throws -> ProcessResult {
        try await runProcess(executablePath(), arguments, currentDirectory: currentDirectory, timeout: timeout)
    }
}

/// Limits how many processor-heavy jobs (compiling `onelua.c`, running the Lua suite) tests run
/// at once, to the number of processors. Tests still run in parallel, but a small machine is not
/// oversubscribed. `MODKIT_TEST_JOBS` overrides the limit.
actor ProcessorSlots {
    static let shared = ProcessorSlots(count: {
        if let text = ProcessInfo.processInfo.environment["MODKIT_TEST_JOBS"], let count = Int(text), count > 0 {
            return count
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }())

    private var available: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(count: Int) {
        available = count
    }

    /// Runs `body` once a slot is free.
    func withSlot<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty {
            available += 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
