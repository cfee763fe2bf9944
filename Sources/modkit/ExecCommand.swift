import Glibc
import ModKit

/// `modkit exec`: loads objects as one module, runs its `main`, and unloads it, like
/// `tcc -run` for ELF relocatable objects.
struct ExecCommand: Command {
    static let name = "exec"
    static let summary = "load objects as one module, run its main, and unload it"
    static let usage = "modkit exec [--repeat N] [--stats] OBJECT... [-- ARGS...]"
    static let discussion = """
        Links the objects into this process as one module, runs its init, calls
        main(argc, argv, envp) with argv[0] set to the first OBJECT followed by ARGS and envp
        set to this process's environment, then runs the module's exit and unmaps it. The
        module may use every symbol of the process (libc, libm, libdl).

        If the module crashes with SIGSEGV, SIGBUS, SIGILL or SIGFPE, prints a crash report to
        standard error (the signal, the registers, a backtrace whose frames are named
        func+0x1c/0x80 [module] and the loaded modules) and dies of that signal.

        Without --trust-dir, no signature is checked: a signed object loads with its signature
        cut off, and an unsigned one loads without a warning. With --trust-dir DIR, each
        object's signature is checked against the certificates in DIR before the object is
        parsed. An object without a trusted signature prints Linux's 'module verification
        failed' warning and taints the host (E), or with --sig-enforce is rejected. A
        signature that does not match its object is always rejected.

        Exits with the status main returns, or with the status the module passes to exit().
        Exits with 1 if a module cannot be loaded or removed, and with 2 for an invalid
        command line.
        """
    static let options = [
        OptionDefinition(long: "repeat", short: "r", valueName: "N",
                         help: "run load, main and unload N times in this process (default 1); exit with the last status"),
        OptionDefinition(long: "stats", short: "s",
                         help: "print to standard error the median time of each stage and of a whole cycle, in microseconds"),
    ] + SignatureOptions.definitions

    let objects: [String]
    let programArguments: [String]
    let repeatCount: Int
    let printsStatistics: Bool
    let signatures: SignatureOptions

    init(arguments: ParsedArguments) throws(UsageError) {
        guard !arguments.positionals.isEmpty else {
            throw UsageError(arguments.passthrough.isEmpty ? "missing object file" : "missing object file before '--'")
        }
        objects = arguments.positionals
        programArguments = arguments.passthrough
        printsStatistics = arguments.contains("stats")
        signatures = try SignatureOptions(arguments: arguments)

        repeatCount = try arguments.integer("repeat", default: 1)
    }

    func run() -> Int32 {
        var options = Self.hostOptions
        do {
            options.trustedCertificates = try signatures.certificates()
        } catch {
            Self.reportError("\(error)")
            return ExitStatus.failure
        }
        options.signatureEnforced = signatures.enforced
        let host = ModuleHost(options: options)
        do {
            try host.installCrashReports()
        } catch {
            writeToStandardError("modkit exec: warning: crash reports are off, because installing their signal handler failed: \(error)\n")
        }
        var statistics = CycleStatistics()
        var status = ExitStatus.success

        for _ in 0 ..< repeatCount {
            guard let cycle = runCycle(host) else { return ExitStatus.failure }
            status = cycle.status
            statistics.append(cycle.stages, total: cycle.duration)
        }

        if printsStatistics {
            writeToStandardError(statistics.report())
        }
        return status
    }

    /// Loads the module, calls `main` and removes the module. Returns nil after reporting an
    /// error.
    private func runCycle(_ host: ModuleHost) -> (status: Int32, stages: LoadStatistics, duration: Duration)? {
        let arguments = CArgumentVector([objects[0]] + programArguments)
        defer { arguments.deallocate() }
        var stages = LoadStatistics()
        let start = ContinuousClock.now

        let module: Module
        do {
            module = try host.load(files: objects, parameters: "", statistics: &stages)
        } catch {
            Self.reportError(error.description)
            return nil
        }

        guard let entry = module.address(of: "main") else {
            Self.reportError("\(objects.joined(separator: " ")): module \(module.name) defines no global 'main' function; modkit exec calls main(argc, argv, envp)")
            try? host.remove(module.name, wait: false, force: false, timeout: nil, statistics: &stages)
            return nil
        }

        let mainStart = ContinuousClock.now
        let status = Self.callMain(entry, arguments: arguments)
        // Module output sits in the process's stdio buffers. Flushing them before anything else
        // is printed keeps the output in the order it was produced, on a terminal or a pipe.
        fflush(nil)
        stages[.main] = ContinuousClock.now - mainStart

        do {
            try host.remove(module.name, wait: false, force: false, timeout: nil, statistics: &stages)
        } catch {
            Self.reportError("main returned \(status), but the module could not be removed: \(error)")
            return nil
        }
        return (status, stages, ContinuousClock.now - start)
    }

    private typealias MainFunction = @convention(c) (
        Int32, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
    ) -> Int32

    private static func callMain(_ entry: UnsafeRawPointer, arguments: CArgumentVector) -> Int32 {
        let main = unsafeBitCast(entry, to: MainFunction.self)
        return main(arguments.count, arguments.pointer, environ)
    }

    /// Every process symbol is allowed. Module messages are printed up to the info level, but
    /// host messages only from warnings up, so the line the host logs for every removal does
    /// not interleave with the program's output. Programs compiled with plain cc carry no
    /// symbol versions, so a missing version taints nothing here.
    private static var hostOptions: HostOptions {
        var options = HostOptions()
        options.processSymbols = .allowAll
        options.taintsUnversionedModules = false
        options.logHandler = { record in
            let maximumLevel = record.module == nil ? 4 : 6
            guard record.level <= maximumLevel else { return }
            let prefix = record.module.map { "\($0): " } ?? "modkit: "
            let line = prefix + record.text + (record.text.hasSuffix("\n") ? "" : "\n")
            writeToStandardError(line)
        }
        return options
    }
}

/// A NULL-terminated `argv` array of C strings that the caller owns.
struct CArgumentVector {
    let pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    let count: Int32

    init(_ arguments: [String]) {
        pointer = .allocate(capacity: arguments.count + 1)
        for (index, argument) in arguments.enumerated() {
            pointer[index] = strdup(argument)
        }
        pointer[arguments.count] = nil
        count = Int32(arguments.count)
    }

    func deallocate() {
        for index in 0 ..< Int(count) { free(pointer[index]) }
        pointer.deallocate()
    }
}
