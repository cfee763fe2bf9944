/// A command-line option that a subcommand accepts, such as `--repeat N` or `-s`.
struct OptionDefinition {
    /// The long name without dashes: `repeat` for `--repeat`.
    var long: String
    /// The short name without the dash: `r` for `-r`.
    var short: Character?
    /// The placeholder shown in help for the option's value, or nil for a flag.
    var valueName: String?
    /// One line for `--help`: what the option sets, and in what unit.
    var help: String

    var takesValue: Bool { valueName != nil }

    /// The option as help shows it: `-r, --repeat N`.
    var synopsis: String {
        var text = short.map { "-\($0), " } ?? "    "
        text += "--\(long)"
        if let valueName { text += " \(valueName)" }
        return text
    }
}

/// A command line that does not fit the subcommand's syntax. The message names the offending
/// argument; the caller adds the usage line.
struct UsageError: Error {
    var message: String

    init(_ message: String) {
        self.message = message
    }
}

/// The arguments of one subcommand, split into options, positional arguments and the
/// arguments after a `--` terminator.
struct ParsedArguments {
    /// The long names of the flags given.
    private(set) var flags: Set<String> = []
    /// The value of each option given, by long name. When an option is repeated, the last
    /// value wins.
    private(set) var values: [String: String] = [:]
    /// Every value of each option given, in order, for options that may be repeated.
    private(set) var allValues: [String: [String]] = [:]
    /// Arguments before `--` that are not options, in order.
    private(set) var positionals: [String] = []
    /// Arguments after `--`, in order and uninterpreted.
    private(set) var passthrough: [String] = []
    /// Whether `--` appeared.
    private(set) var hasTerminator = false
    /// Whether `-h` or `--help` appeared before any error and before `--`.
    private(set) var helpRequested = false

    func contains(_ long: String) -> Bool {
        flags.contains(long)
    }

    func value(_ long: String) -> String? {
        values[long]
    }

    /// Returns every value given for a repeatable option such as `--symvers FILE`.
    func values(_ long: String) -> [String] {
        allValues[long] ?? []
    }

    /// Returns the value of option `long` as an integer in `range`, or `defaultValue` when the
    /// option is absent. Throws a usage error that names the option and the range otherwise.
    func integer(_ long: String, default defaultValue: Int, in range: ClosedRange<Int> = 1 ... Int.max) throws(UsageError) -> Int {
        guard let text = value(long) else { return defaultValue }
        guard let number = Int(text), range.contains(number) else {
            let expected: String
            if range == 1 ... Int.max {
                expected = "a positive integer"
            } else if range.upperBound == Int.max {
                expected = "an integer of at least \(range.lowerBound)"
            } else {
                expected = "an integer from \(range.lowerBound) to \(range.upperBound)"
            }
            throw UsageError("invalid value '\(text)' for --\(long); expected \(expected)")
        }
        return number
    }

    private mutating func record(_ long: String, value: String) {
        values[long] = value
        allValues[long, default: []].append(value)
    }

    /// Splits `arguments` according to `options`, in the GNU style.
    ///
    /// Options and positional arguments may be interleaved, and `--name=value` equals
    /// `--name value`. Short flags can be grouped (`-sv`), and a short option's value may be
    /// attached (`-r3`) or follow (`-r 3`). A lone `-` is a positional argument. `-h` and
    /// `--help` are always accepted. With `optionsEndAtFirstOperand`, the first positional
    /// argument and everything after it are positional, as for `modkit call COMMAND -x`.
    static func parse(_ arguments: [String], options: [OptionDefinition],
                      optionsEndAtFirstOperand: Bool = false) throws(UsageError) -> ParsedArguments {
        var parsed = ParsedArguments()
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1

            if argument == "--" {
                parsed.hasTerminator = true
                parsed.passthrough = Array(arguments[index...])
                break
            }
            if argument == "--help" || argument == "-h" {
                parsed.helpRequested = true
                break
            }

            if argument.hasPrefix("--") {
                try parsed.parseLongOption(argument, options: options, arguments: arguments, index: &index)
            } else if argument.hasPrefix("-") && argument != "-" {
                try parsed.parseShortOptions(argument, options: options, arguments: arguments, index: &index)
            } else if optionsEndAtFirstOperand {
                parsed.positionals = Array(arguments[(index - 1)...])
                break
            } else {
                parsed.positionals.append(argument)
            }
        }
        return parsed
    }

    private mutating func parseLongOption(_ argument: String, options: [OptionDefinition], arguments: [String],
                                          index: inout Int) throws(UsageError) {
        let body = argument.dropFirst(2)
        let name = body.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let attachedValue = body.contains("=") ? String(body[body.index(after: body.firstIndex(of: "=")!)...]) : nil

        guard let option = options.first(where: { $0.long == name }) else {
            throw UsageError("unknown option '--\(name)'")
        }
        guard option.takesValue else {
            if attachedValue != nil {
                throw UsageError("option '--\(name)' does not take a value")
            }
            flags.insert(option.long)
            return
        }
        if let attachedValue {
            record(option.long, value: attachedValue)
        } else {
            record(option.long, value: try Self.nextValue(for: "--\(name)", arguments: arguments, index: &index))
        }
    }

    private mutating func parseShortOptions(_ argument: String, options: [OptionDefinition], arguments: [String],
                                            index: inout Int) throws(UsageError) {
        var letters = argument.dropFirst()
        while let letter = letters.first {
            letters = letters.dropFirst()
            if letter == "h" {
                helpRequested = true
                return
            }
            guard let option = options.first(where: { $0.short == letter }) else {
                throw UsageError("unknown option '-\(letter)'")
            }
            guard option.takesValue else {
                flags.insert(option.long)
                continue
            }
            // The rest of the group is the value, as in `-r3`.
            if !letters.isEmpty {
                record(option.long, value: String(letters))
            } else {
                record(option.long, value: try Self.nextValue(for: "-\(letter)", arguments: arguments, index: &index))
            }
            return
        }
    }

    private static func nextValue(for spelling: String, arguments: [String], index: inout Int) throws(UsageError) -> String {
        guard index < arguments.count, arguments[index] != "--" else {
            throw UsageError("option '\(spelling)' requires a value")
        }
        defer { index += 1 }
        return arguments[index]
    }
}
