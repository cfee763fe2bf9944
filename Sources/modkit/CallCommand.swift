import Glibc
import ModKit

/// `modkit call`: runs a command that a module registered in the daemon.
struct CallCommand: Command {
    static let name = "call"
    static let summary = "run a command that a loaded module registered"
    static let usage = "modkit call [COMMAND [ARGS...]]"
    static let discussion = """
        Runs COMMAND in the daemon with ARGS (argv[0] is COMMAND) and prints what it wrote
        with modkit_printf. The daemon holds a reference on the command's module while it
        runs, so the module cannot be removed under it. Options after COMMAND go to the
        command. Without COMMAND, lists the registered commands with their modules.

        Exit status: 0 when the command returned 0, 1 when it returned anything else or was
        not found, 3 when no daemon accepts the connection, 4 when the daemon rejects this client.
        """
    static let options: [OptionDefinition] = []
    static let optionsEndAtFirstOperand = true

    let command: String?
    let arguments: [String]

    init(arguments: ParsedArguments) throws(UsageError) {
        let operands = arguments.positionals + arguments.passthrough
        command = operands.first
        self.arguments = Array(operands.dropFirst())
    }

    func run() -> Int32 {
        do throws(ToolFailure) {
            guard let command else {
                try listCommands()
                return ExitStatus.success
            }
            let reply = try DaemonAccess.send(.callCommand(name: command, arguments: arguments))
            guard reply.succeeded else {
                throw ToolFailure(reply.status == ENOENT
                    ? [reply.message, "hint: 'modkit call' lists the registered commands"] : [reply.message])
            }
            let output = (try? reply.fields.string(.output)) ?? nil
            let status = ((try? reply.fields.int64(.commandStatus)) ?? nil) ?? 0
            print(output ?? "", terminator: "")
            guard status == 0 else {
                let reason = status < 0 && status > -4096 ? " (\(String(cString: strerror(Int32(-status)))))" : ""
                throw ToolFailure("command \(command) failed with status \(status)\(reason)")
            }
            return ExitStatus.success
        } catch {
            fflush(nil)
            return Self.report(error)
        }
    }

    private func listCommands() throws(ToolFailure) {
        let reply = try DaemonAccess.send(.listCommands)
        guard reply.succeeded else { throw ToolFailure(reply.message) }
        var commands: [CommandRecord] = []
        do throws(ProtocolError) {
            for fields in try reply.fields.records(.command) { commands.append(try CommandRecord(fields)) }
        } catch {
            throw ToolFailure("invalid reply from the daemon: \(error)", status: ExitStatus.rejected)
        }
        let width = commands.map(\.name.count).max() ?? 0
        for command in commands {
            print("\(command.name.padding(to: width))  \(command.summary) [\(command.owner ?? "host")]")
        }
    }
}
