import Glibc
import ModKit
import Synchronization

/// The work of `modkit stress`, done in a child process so that a crash ends only that
/// process. It loads and removes the module again and again while caller threads call one of
/// its commands, and sends `StressRecord`s to the parent.
///
/// The caller threads start before the first reading of the memory and return after the last,
/// because thread stacks are mappings too. A warm-up round comes first, so that the module
/// area, each thread's reference counter block and malloc arena, and the allocator's pools
/// exist before the baseline is read.
struct StressWorker {
    var objects: [String]
    /// The command to call, or nil to call the module's only command.
    var commandName: String?
    var commandArguments: [String]
    var cycles: Int
    var callerCount: Int
    /// The write end of the pipe to the parent.
    var reportDescriptor: Int32

    /// Load and removal cycles before the baseline, which are not counted, unless a caller
    /// thread has not run a call yet.
    static let warmUpCycles = 100
    static let maximumWarmUpCycles = 10_000
    /// How often the counts are sent to the parent.
    static let progressInterval = Duration.milliseconds(100)

    /// Runs the cycles and returns the exit status of the worker process: 0, or 1 after
    /// printing an error.
    func run() -> Int32 {
        // Both snapshots are allocated before the first reading, so that both readings contain
        // the buffers of both.
        let before = ProcessMemorySnapshot()
        let after = ProcessMemorySnapshot()
        let host = ModuleHost(options: Self.hostOptions)
        do {
            try host.installCrashReports()
        } catch {
            StressCommand.reportWarning("crash reports are off, because installing their signal handler failed: \(error)")
        }
        let callers = StressCallers(host: host, count: callerCount, arguments: commandArguments)

        guard let firstModule = loadFirst(host, callers: callers) else {
            callers.stop()
            return ExitStatus.failure
        }
        var status = ExitStatus.success
        callers.start(.warmUp)
        if case .failure(let failure) = warmUp(host, first: firstModule, callers: callers) {
            StressCommand.reportError(failure.message)
            callers.stop()
            return ExitStatus.failure
        }
        callers.pause()

        ModuleArea.shared.dropWarmPages()
        // A first reading into `after`, and a first record sent, make the buffers and the code
        // they use resident, so that they do not count in the change of the resident size.
        after.take()
        StressRecord.progress(StressCounts()).send(to: reportDescriptor)
        before.take()
        StressRecord.baseline(mapsLines: before.mapsLines, residentKiB: before.residentKiB).send(to: reportDescriptor)

        callers.start(.measured)
        var counts = StressCounts()
        if case .failure(let failure) = runCycles(host, callers: callers, counts: &counts) {
            StressCommand.reportError(failure.message)
            status = ExitStatus.failure
        }
        callers.pause()

        ModuleArea.shared.dropWarmPages()
        after.take()
        counts.ran = callers.ran
        counts.failed = callers.failed
        let mapsDelta = after.mapsLines - before.mapsLines
        if mapsDelta != 0 {
            Self.reportMapsChange(mapsDelta, before: before.lines, after: after.lines)
            status = ExitStatus.failure
        }
        callers.stop()
        callers.reportNonZeroStatuses()
        StressRecord.finished(counts, mapsDelta: mapsDelta, residentDeltaKiB: after.residentKiB - before.residentKiB)
            .send(to: reportDescriptor)
        return status
    }

    /// Loads the module and picks the command to call. Returns nil after printing an error,
    /// with the module removed again.
    private func loadFirst(_ host: ModuleHost, callers: StressCallers) -> Module? {
        let module: Module
        do {
            module = try host.load(files: objects)
        } catch {
            StressCommand.reportError(error.description)
            return nil
        }
        switch selectCommand(of: module, in: host) {
        case .success(let name):
            callers.command = name
            return module
        case .failure(let failure):
            StressCommand.reportError(failure.message)
            do {
                try host.remove(module.name, wait: true)
            } catch {
                StressCommand.reportError("module \(module.name) could not be removed: \(error)")
            }
            return nil
        }
    }

    /// Returns the name of the command to call: `--command` if the module registered it, else
    /// the module's only command.
    private func selectCommand(of module: Module, in host: ModuleHost) -> Result<String, StressFailure> {
        let registered = host.commands.filter { $0.owner == module.name }.map(\.name)
        let list = registered.isEmpty ? "it registers no commands" : "it registers: \(registered.joined(separator: ", "))"
        if let commandName {
            guard registered.contains(commandName) else {
                return .failure(StressFailure("command '\(commandName)' not found in module \(module.name); \(list)"))
            }
            return .success(commandName)
        }
        switch registered.count {
        case 0:
            return .failure(StressFailure("module \(module.name) registers no commands; modkit stress calls a command that the module registers with modkit_register_command"))
        case 1:
            return .success(registered[0])
        default:
            return .failure(StressFailure("module \(module.name) registers \(registered.count) commands (\(registered.joined(separator: ", "))); choose one with --command NAME"))
        }
    }

    /// Runs the warm-up cycles: at least `warmUpCycles`, and more until every caller thread
    /// has run a call, because a thread's first reference maps its counter block. While a
    /// thread has not, each cycle keeps the module loaded until it has, for at most 1 ms.
    private func warmUp(_ host: ModuleHost, first: Module, callers: StressCallers) -> Result<Void, StressFailure> {
        var loaded: Module? = first
        for index in 0 ..< Self.maximumWarmUpCycles {
            if index >= Self.warmUpCycles && callers.allRan { return .success(()) }
            let module: Module
            if let loaded {
                module = loaded
            } else {
                do {
                    module = try host.load(files: objects)
                } catch {
                    return .failure(StressFailure("warm-up cycle \(index + 1): \(error.description)"))
                }
            }
            loaded = nil
            let deadline = ContinuousClock.now + .milliseconds(1)
            while !callers.allRan && ContinuousClock.now < deadline { usleep(20) }
            do {
                try host.remove(module.name, wait: true)
            } catch {
                return .failure(StressFailure("warm-up cycle \(index + 1): module \(module.name) could not be removed: \(error)"))
            }
        }
        StressCommand.reportWarning("a caller thread ran no call in \(Self.maximumWarmUpCycles) warm-up cycles, so its first call may count in the maps and rss deltas")
        return .success(())
    }

    /// Runs the counted cycles of load and removal with wait, counts them in `counts` and
    /// sends the counts to the parent about every `progressInterval`.
    private func runCycles(_ host: ModuleHost, callers: StressCallers, counts: inout StressCounts) -> Result<Void, StressFailure> {
        var lastProgress = ContinuousClock.now
        for index in 0 ..< cycles {
            let module: Module
            do {
                module = try host.load(files: objects)
            } catch {
                return .failure(StressFailure("cycle \(index + 1): \(error.description)"))
            }
            do {
                try host.remove(module.name, wait: true)
            } catch {
                return .failure(StressFailure("cycle \(index + 1): module \(module.name) could not be removed: \(error)"))
            }
            counts.cycles += 1
            if ContinuousClock.now - lastProgress >= Self.progressInterval {
                lastProgress = ContinuousClock.now
                StressRecord.progress(StressCounts(cycles: counts.cycles, ran: callers.ran, failed: callers.failed))
                    .send(to: reportDescriptor)
            }
        }
        return .success(())
    }

    /// Prints how the number of mappings changed and up to 20 lines that differ.
    private static func reportMapsChange(_ delta: Int, before: [String], after: [String]) {
        let gone = Set(before).subtracting(after).sorted()
        let new = Set(after).subtracting(before).sorted()
        var text = "/proc/self/maps has \(delta > 0 ? "\(delta) more" : "\(-delta) fewer") lines after the last removal than before the first load"
        for line in gone.prefix(10) { text += "\n  gone: \(line)" }
        for line in new.prefix(10) { text += "\n  new:  \(line)" }
        StressCommand.reportError(text)
    }

    /// Messages of modules and of the host go to standard error from the warning level up.
    /// Info messages, such as the line the host logs for every removal, are dropped.
    private static var hostOptions: HostOptions {
        var options = HostOptions()
        options.processSymbols = .allowAll
        options.consoleLevel = 4
        // Stress modules are compiled with plain cc, without symbol versions, and a warning
        // for each of thousands of loads would bury the report.
        options.taintsUnversionedModules = false
        return options
    }
}

/// An error message of `modkit stress`.
struct StressFailure: Error {
    var message: String

    init(_ message: String) {
        self.message = message
    }
}
