import Glibc

/// The `modkit` command line: picks the subcommand named by the first argument.
enum Tool {
    /// Every subcommand, in the order `modkit --help` lists them.
    static var commands: [any Command.Type] {
        [ExecCommand.self, LinkCommand.self, CFlagsCommand.self, VersionCommand.self]
    }

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
            guard let command = command(named: arguments[1]) else { return reportUnknown(arguments[1]) }
            return command.main(["--help"])
        case "--version":
            return VersionCommand.main([])
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
        for command in commands {
            let padding = String(repeating: " ", count: width - command.name.count + 2)
            text += "  \(command.name)\(padding)\(command.summary)\n"
        }
        text += "\nRun 'modkit COMMAND --help' for a command's options.\n"
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
