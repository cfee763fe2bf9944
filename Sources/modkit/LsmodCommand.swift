import ModKit

/// `modkit lsmod`: lists the modules loaded in the daemon.
struct LsmodCommand: Command {
    static let name = "lsmod"
    static let summary = "list the modules loaded in the daemon"
    static let usage = "modkit lsmod [--json | --dot]"
    static let discussion = """
        Prints one line per module, newest first, in kmod's layout: the name, the size in
        bytes of the memory mapped for it, the reference count (which includes one reference
        per module that uses it) and the modules that use it, separated by commas.

        --json prints a JSON array with the name, size, reference count, state, users and
        dependencies of each module. --dot prints a Graphviz digraph with an edge from each
        module to each module it uses.
        """
    static let options = [
        OptionDefinition(long: "json", help: "print JSON instead of the table"),
        OptionDefinition(long: "dot", help: "print the dependency graph in Graphviz dot format"),
    ]

    enum Format {
        case table, json, dot
    }

    let format: Format

    init(arguments: ParsedArguments) throws(UsageError) {
        try Self.rejectOperands(arguments)
        if arguments.contains("json") && arguments.contains("dot") {
            throw UsageError("--json and --dot cannot be combined")
        }
        format = arguments.contains("json") ? .json : arguments.contains("dot") ? .dot : .table
    }

    func run() -> Int32 {
        let modules: [ModuleRecord]
        do throws(ToolFailure) {
            let reply = try DaemonAccess.send(.list)
            guard reply.succeeded else { throw ToolFailure(reply.message) }
            modules = try Self.decode(reply).reversed()
        } catch {
            return Self.report(error)
        }
        switch format {
        case .table: print(Self.table(modules), terminator: "")
        case .json: print(Self.json(modules), terminator: "")
        case .dot: print(Self.dot(modules), terminator: "")
        }
        return ExitStatus.success
    }

    private static func decode(_ reply: Reply) throws(ToolFailure) -> [ModuleRecord] {
        do throws(ProtocolError) {
            var records: [ModuleRecord] = []
            for fields in try reply.fields.records(.module) { records.append(try ModuleRecord(fields)) }
            return records
        } catch {
            throw ToolFailure("invalid reply from the daemon: \(error)", status: ExitStatus.rejected)
        }
    }

    /// kmod's format: `%-19s %8u  %d` and then ` user1,user2`, followed by the module's taint
    /// letters in parentheses as `/proc/modules` shows them, such as ` (PE)`.
    static func table(_ modules: [ModuleRecord]) -> String {
        var text = "Module                  Size  Used by\n"
        for module in modules {
            let size = String(module.size)
            text += module.name.padding(to: 19) + " " + String(repeating: " ", count: max(0, 8 - size.count)) + size
            text += "  \(module.referenceCount)"
            if !module.users.isEmpty { text += " " + module.users.joined(separator: ",") }
            if !module.taint.isEmpty { text += " (\(module.taint))" }
            text += "\n"
        }
        return text
    }

    static func json(_ modules: [ModuleRecord]) -> String {
        func list(_ names: [String]) -> String {
            "[" + names.map(jsonString).joined(separator: ", ") + "]"
        }
        let entries = modules.map { module in
            "  {\"name\": \(jsonString(module.name)), \"size\": \(module.size), \"refcount\": \(module.referenceCount), "
                + "\"state\": \(jsonString(module.state)), \"usedBy\": \(list(module.users)), \"dependsOn\": \(list(module.dependencies)), "
                + "\"taint\": \(jsonString(module.taint))}"
        }
        return entries.isEmpty ? "[]\n" : "[\n" + entries.joined(separator: ",\n") + "\n]\n"
    }

    static func dot(_ modules: [ModuleRecord]) -> String {
        var text = "digraph modules {\n"
        for module in modules.reversed() {
            text += "  \(jsonString(module.name));\n"
        }
        for module in modules.reversed() {
            for dependency in module.dependencies {
                text += "  \(jsonString(module.name)) -> \(jsonString(dependency));\n"
            }
        }
        return text + "}\n"
    }
}

/// `text` as a JSON string literal, which is also a valid Graphviz quoted ID.
func jsonString(_ text: String) -> String {
    var result = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\n": result += "\\n"
        case "\t": result += "\\t"
        case "\r": result += "\\r"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
    }
    return result + "\""
}

extension String {
    /// The string padded with spaces on the right to `width` characters, or unchanged when
    /// longer, as printf's `%-Ns` does.
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
