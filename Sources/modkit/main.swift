import Glibc

/// The `modkit` command line: picks the subcommand named by the first argument.
enum Tool {
    /// Every subcommand, in the order `modkit --help` lists them.
    static var commands: [any Command.Type] {
        [ExecCommand.self, LinkCommand.self, CFlagsCommand.self, BuildCommand.self, HostCommand.self, InsmodCommand.self, RmmodCommand.self, LsmodCommand.self,
         ModinfoCommand.self, SignCommand.self, DepmodCommand.self, ModprobeCommand.self, CallCommand.self, ParamCommand.self, DmesgCommand.self, StatusCommand.self,
         KallsymsCommand.self, BenchRefcountCommand.self, BenchKallsymsCommand.self, StressCommand.self, VersionCommand.self]
    }

    /// The commands named `bench`, by the benchmark name that follows it.
    static let benchmarks: [String: any Command.Type] = [
        "refcount": BenchRefcountCommand.self,
        "kallsyms": BenchKallsymsCommand.self,
    ]

    static let helpText = """
        usage: modkit COMMAND [OPTIONS] [ARGUMENTS]

        Loads ELF relocatable objects (.o) into this process as modules, links them and runs them.

        """

    static func run(_ arguments: [String]) -> Int32 {
        guard let first = arguments.first else {
            writeToStandardError("modkit: missing command\nRun 'modkit --help' for the list of commands.\n")
            return ExitStatus.usage
        }
        switch first {
        case "-h", "--help":
            printHelp()
            return ExitStatus.success
        case "help":
            guard arguments.count > 1 else {
                printHelp()
                return ExitStatus.success
            }
            if arguments[1] == "bench" {
                printBenchmarkHelp()
                return ExitStatus.success
            }
            guard let command = command(named: arguments[1]) else { return reportUnknown(arguments[1]) }
            return command.main(["--help"])
        case "--version":
            return VersionCommand.main([])
        case "bench":
            // Each benchmark is its own command with its own options; the word after
            // `bench` picks it.
            if arguments.count > 1, arguments[1] == "-h" || arguments[1] == "--help" {
                printBenchmarkHelp()
                return ExitStatus.success
            }
            guard arguments.count > 1, let benchmark = benchmarks[arguments[1]] else {
                let names = benchmarks.keys.sorted().joined(separator: ", ")
                let given = arguments.count > 1 ? "unknown benchmark '\(arguments[1])'" : "missing benchmark name"
                writeToStandardError("modkit bench: \(given); the benchmarks are \(names)\nusage: modkit bench NAME [OPTIONS]\n")
                return ExitStatus.usage
            }
            return benchmark.main(Array(arguments.dropFirst()))
        default:
            guard let command = command(named: first) else { return reportUnknown(first) }
            return command.main(Array(arguments.dropFirst()))
        }
    }

    private static func command(named name: String) -> (any Command.Type)? {
        commands.first { $0.name == name }
    }

    private static func printHelp() {
        let width = commands.map { $0.name.count }.max() ?? 0
        var text = helpText + "\ncommands:\n"
        for command in commands where command.name != "bench" {
            let padding = String(repeating: " ", count: width - command.name.count + 2)
            text += "  \(command.name)\(padding)\(command.summary)\n"
        }
        for name in benchmarks.keys.sorted() {
            let label = "bench \(name)"
            text += "  \(label)\(String(repeating: " ", count: max(width - label.count, 0) + 2))\(benchmarks[name]!.summary)\n"
        }
        text += "\nRun 'modkit COMMAND --help' for a command's options.\n"
        print(text, terminator: "")
    }

    private static func printBenchmarkHelp() {
        var text = "usage: modkit bench NAME [OPTIONS]\n\nbenchmarks:\n"
        let width = benchmarks.keys.map(\.count).max() ?? 0
        for name in benchmarks.keys.sorted() {
            text += "  \(name)\(String(repeating: " ", count: width - name.count + 2))\(benchmarks[name]!.summary)\n"
        }
        text += "\nRun 'modkit bench NAME --help' for a benchmark's options and the rows it prints.\n"
        print(text, terminator: "")
    }

    private static func reportUnknown(_ word: String) -> Int32 {
        let kind = word.hasPrefix("-") ? "option" : "command"
        writeToStandardError("modkit: unknown \(kind) '\(word)'\nRun 'modkit --help' for the list of commands.\n")
        return ExitStatus.usage
    }
}

let status = Tool.run(Array(CommandLine.arguments.dropFirst()))
fflush(nil)
exit(status)
