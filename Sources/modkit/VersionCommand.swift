/// `modkit version`: prints the tool's version.
struct VersionCommand: Command {
    // NOTE: kept by hand until the ModKit library exposes its own version.
    static let version = "0.1.0-dev"

    static let name = "version"
    static let summary = "print the version of modkit"
    static let usage = "modkit version"
    static let discussion = "Prints 'modkit VERSION' to standard output."
    static let options: [OptionDefinition] = []

    init(arguments: ParsedArguments) throws(UsageError) {
        try Self.rejectOperands(arguments)
    }

    func run() -> Int32 {
        print("modkit \(Self.version)")
        return ExitStatus.success
    }
}
