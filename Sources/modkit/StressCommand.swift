import Glibc
import ModKit

/// `modkit stress`: loads and removes a module many times while threads call its command, in
/// a worker process, and reports crashes and leaked mappings.
struct StressCommand: Command {
    static let name = "stress"
    static let summary = "load and remove a module repeatedly while threads call its command"
    static let usage = "modkit stress [--cycles N] [--callers T] [--command NAME] [-v] OBJECT... [-- ARGS...]"
    static let discussion = """
        Loads the objects as one module and removes it again, N times. Each removal
        waits until the last reference is put before the module's exit runs and its memory is
        unmapped. Meanwhile T threads call a command that the module registers with
        modkit_register_command, in a loop, with ARGS as its arguments. Each call takes a
        reference on the module with try_module_get, as 'modkit call' does. A call that finds
        the module initializing, going away or not loaded fails cleanly and is counted.
        Without --command, the threads call the module's only command. A module that
        registers several commands needs --command.

        The cycles run in a worker process, so that a crash in the module ends only the
        worker. The command ends with one line:

          N cycles, C calls ran, F calls failed cleanly, K crashes, maps delta D, rss delta R KiB

        C counts calls that ran the command, whatever status it returned. D is the change in
        the number of lines of the worker's /proc/self/maps, and R the change of its resident
        set size (VmRSS, read exactly from /proc/self/smaps_rollup) in KiB, from before the
        first counted load to after the last removal. Both are measured after warm-up cycles
        that are not counted, so that memory the allocator and the threads take once is left
        out: at least 100, and more until every caller thread has run a call. If the worker
        dies of a signal, K is 1, the counts are those the worker reported last (at most
        0.1 s old), and D and R are unknown.

        Exit status: 0 when every cycle ran, K is 0 and D is 0; 1 otherwise, or when the
        module cannot be loaded or has no such command; 2 for an invalid command line.
        """
    static let options = [
        OptionDefinition(long: "cycles", short: "n", valueName: "N",
                         help: "load and removal cycles to count (default 1000)"),
        OptionDefinition(long: "callers", short: "t", valueName: "T",
                         help: "threads that call the command, from 1 to \(maximumCallers) (default 2)"),
        OptionDefinition(long: "command", short: "c", valueName: "NAME",
                         help: "the command to call (default: the module's only command)"),
        OptionDefinition(long: "verbose", short: "v",
                         help: "report the memory at the start and the progress, about once a second, to standard error"),
    ]

    static let maximumCallers = 256

    let objects: [String]
    let commandName: String?
    let commandArguments: [String]
    let cycles: Int
    let callers: Int
    let verbose: Bool

    init(arguments: ParsedArguments) throws(UsageError) {
        guard !arguments.positionals.isEmpty else {
            throw UsageError(arguments.passthrough.isEmpty ? "missing object file" : "missing object file before '--'")
        }
        objects = arguments.positionals
        commandArguments = arguments.passthrough
        verbose = arguments.contains("verbose")
        cycles = try arguments.integer("cycles", default: 1000)
        callers = try arguments.integer("callers", default: 2, in: 1 ... Self.maximumCallers)
        if let name = arguments.value("command"), name.isEmpty {
            throw UsageError("invalid value '' for --command; expected a command name")
        }
        commandName = arguments.value("command")
    }

    func run() -> Int32 {
        // fork copies only the calling thread, so the worker is safe to run only while this
        // process has no other thread.
        let threads = Self.threadCount()
        guard threads == 1 else {
            Self.reportError("cannot start the worker process: this process runs \(threads) threads, and fork needs exactly 1")
            return ExitStatus.failure
        }
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else {
            Self.reportError("cannot create a pipe: \(Errno(errno))")
            return ExitStatus.failure
        }
        let (readEnd, writeEnd) = (descriptors[0], descriptors[1])
        // Programs that the module may start do not inherit the pipe.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        fflush(nil)
        let child = fork()
        guard child >= 0 else {
            Self.reportError("cannot fork the worker process: \(Errno(errno))")
            return ExitStatus.failure
        }
        if child == 0 {
            close(readEnd)
            let worker = StressWorker(objects: objects, commandName: commandName, commandArguments: commandArguments,
                                      cycles: cycles, callerCount: callers, reportDescriptor: writeEnd)
            let status = worker.run()
            fflush(nil)
            _exit(status)
        }
        close(writeEnd)
        let records = StressMonitor(verbose: verbose, cycles: cycles).read(readEnd)
        close(readEnd)
        return finish(child: child, records: records)
    }

    /// Waits for the worker, prints the summary and returns the exit status.
    private func finish(child: pid_t, records: StressMonitor.Result) -> Int32 {
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED, WEXITSTATUS and WTERMSIG are macros that Swift does not import.
        let signal = status & 0x7f
        if signal != 0 {
            let counts = records.last
            print("\(counts.cycles) cycles, \(counts.ran) calls ran, \(counts.failed) calls failed cleanly, 1 crashes, maps delta unknown, rss delta unknown")
            fflush(nil)
            let when = records.warmedUp ? "after at least \(counts.cycles) counted cycles" : "before the warm-up cycles ended"
            Self.reportError("the worker process died of \(Self.signalName(signal)) \(when)")
            return ExitStatus.failure
        }
        let exitStatus = (status >> 8) & 0xff
        guard let finished = records.finished else {
            // The worker printed why it stopped before the cycles began.
            if exitStatus == 0 { Self.reportError("the worker process exited without reporting its counts") }
            return ExitStatus.failure
        }
        let counts = finished.counts
        print("\(counts.cycles) cycles, \(counts.ran) calls ran, \(counts.failed) calls failed cleanly, 0 crashes, maps delta \(finished.mapsDelta), rss delta \(finished.residentDeltaKiB) KiB")
        fflush(nil)
        guard exitStatus == 0, finished.mapsDelta == 0, counts.cycles == cycles else { return ExitStatus.failure }
        return ExitStatus.success
    }

    /// Returns the number of threads of this process, the entries of `/proc/self/task`.
    private static func threadCount() -> Int {
        guard let directory = opendir("/proc/self/task") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != CChar(UInt8(ascii: ".")) { count += 1 }
        }
        return count
    }

    /// Returns the name of a signal: `SIGSEGV`, or `signal 40`.
    static func signalName(_ signal: Int32) -> String {
        let names: [Int32: String] = [
            SIGSEGV: "SIGSEGV", SIGBUS: "SIGBUS", SIGILL: "SIGILL", SIGFPE: "SIGFPE", SIGABRT: "SIGABRT",
            SIGTRAP: "SIGTRAP", SIGSYS: "SIGSYS", SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGINT: "SIGINT",
            SIGHUP: "SIGHUP", SIGQUIT: "SIGQUIT", SIGPIPE: "SIGPIPE",
        ]
        return names[signal] ?? "signal \(signal)"
    }

    static func reportWarning(_ message: String) {
        writeToStandardError("modkit \(name): warning: \(message)\n")
    }

    static func reportNote(_ message: String) {
        writeToStandardError("modkit \(name): note: \(message)\n")
    }
}
