import Glibc

/// Exit statuses shared by every subcommand. `modkit exec` exits with the module's own status
/// once the module ran.
enum ExitStatus {
    static let success: Int32 = 0
    /// The command was well formed but failed: a module did not load, a file is missing.
    static let failure: Int32 = 1
    /// The command line was invalid.
    static let usage: Int32 = 2
    /// No daemon accepts the connection: it is not running, or the socket cannot be opened.
    static let noDaemon: Int32 = 3
    /// The daemon rejected the client (another user) or the protocol did not match.
    static let rejected: Int32 = 4
}

/// One `modkit` subcommand: its syntax, its help, and the work it does.
protocol Command {
    /// The word after `modkit`: `exec`.
    static var name: String { get }
    /// One line for the list in `modkit --help`.
    static var summary: String { get }
    /// The synopsis without the leading `usage: `: `modkit exec [--repeat N] OBJECT...`.
    static var usage: String { get }
    /// Paragraphs shown by `--help` between the usage line and the options.
    static var discussion: String { get }
    static var options: [OptionDefinition] { get }
    /// Whether the first operand ends the options, so that the arguments after it may start
    /// with `-` (`modkit call COMMAND -v`). False unless a command says otherwise.
    static var optionsEndAtFirstOperand: Bool { get }

    /// Checks the parsed arguments. Throws for anything the syntax allows but the command
    /// cannot accept, such as a missing operand.
    init(arguments: ParsedArguments) throws(UsageError)

    /// Does the work and returns the exit status.
    func run() -> Int32
}

extension Command {
    static var optionsEndAtFirstOperand: Bool { false }

    static var helpText: String {
        var text = "usage: \(usage)\n\n\(discussion)\n"
        let allOptions = options + [OptionDefinition(long: "help", short: "h", help: "show this help and exit")]
        let width = allOptions.map(\.synopsis.count).max() ?? 0
        text += "\noptions:\n"
        for option in allOptions {
            let padding = String(repeating: " ", count: width - option.synopsis.count + 2)
            text += "  \(option.synopsis)\(padding)\(option.help)\n"
        }
        return text
    }

    /// Parses `arguments` (everything after the subcommand's name), prints help or a usage
    /// error when asked to, and otherwise runs the command.
    static func main(_ arguments: [String]) -> Int32 {
        let parsed: ParsedArguments
        let command: Self
        do {
            parsed = try ParsedArguments.parse(arguments, options: options, optionsEndAtFirstOperand: optionsEndAtFirstOperand)
            if parsed.helpRequested {
                print(helpText, terminator: "")
                return ExitStatus.success
            }
            command = try Self(arguments: parsed)
        } catch {
            reportUsageError(error.message)
            return ExitStatus.usage
        }
        return command.run()
    }

    static func reportUsageError(_ message: String) {
        writeToStandardError("modkit \(name): \(message)\nusage: \(usage)\nRun 'modkit \(name) --help' for more information.\n")
    }

    /// Prints `modkit NAME: error: MESSAGE` to standard error.
    static func reportError(_ message: String) {
        writeToStandardError("modkit \(name): error: \(message)\n")
    }

    /// Rejects positional arguments and arguments after `--`, for commands that take none.
    static func rejectOperands(_ arguments: ParsedArguments) throws(UsageError) {
        if let first = arguments.positionals.first ?? arguments.passthrough.first {
            throw UsageError("unexpected argument '\(first)'")
        }
    }
}

/// Writes `text` to standard error (file descriptor 2) at once, without a buffer, so it
/// appears in order with module output that was flushed before.
func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return }
        bytes = bytes.dropFirst(written)
    }
}
