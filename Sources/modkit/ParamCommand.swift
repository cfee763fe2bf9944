import Glibc
import ModKit

/// `modkit param`: reads and writes the parameters of a module loaded in the daemon.
struct ParamCommand: Command {
    static let name = "param"
    static let summary = "show or set the parameters of a loaded module"
    static let usage = "modkit param MODULE [NAME[=VALUE]]"
    static let discussion = """
        Without NAME, prints every visible parameter of MODULE as NAME=VALUE, one per line,
        sorted by name.
        With NAME, prints its value. With NAME=VALUE, sets it, which the parameter's
        permission bits must allow (a mode without write bits makes it read-only, and mode 0
        hides it). Values are written as at load time: VALUE is parsed as the parameter's
        type, and a value that does not fit is rejected.

        Exit status: 0 on success, 1 when the module or parameter is missing or the value is
        rejected, 2 for a usage error, 3 when no daemon accepts the connection, 4 when the
        daemon rejects this client.
        """
    static let options: [OptionDefinition] = []

    let module: String
    let name: String?
    let value: String?

    init(arguments: ParsedArguments) throws(UsageError) {
        let operands = arguments.positionals
        guard let module = operands.first else { throw UsageError("missing module name") }
        guard operands.count <= 2 else { throw UsageError("unexpected argument '\(operands[2])'") }
        self.module = module
        if let assignment = operands.dropFirst().first {
            if let equals = assignment.firstIndex(of: "=") {
                name = String(assignment[..<equals])
                value = String(assignment[assignment.index(after: equals)...])
            } else {
                name = assignment
                value = nil
            }
            guard name?.isEmpty == false else { throw UsageError("missing parameter name in '\(assignment)'") }
        } else {
            name = nil
            value = nil
        }
    }

    func run() -> Int32 {
        do throws(ToolFailure) {
            let reply = try DaemonAccess.send(.parameters(module: module, name: name, value: value))
            guard reply.succeeded else { throw ToolFailure(reply.message) }
            if value != nil { return ExitStatus.success }
            if name != nil {
                print((try? reply.fields.string(.value)).flatMap { $0 } ?? "")
                return ExitStatus.success
            }
            do throws(ProtocolError) {
                for fields in try reply.fields.records(.parameter) {
                    let record = try ParameterRecord(fields)
                    print("\(record.name)=\(record.value)")
                }
            } catch {
                throw ToolFailure("invalid reply from the daemon: \(error)", status: ExitStatus.rejected)
            }
            return ExitStatus.success
        } catch {
            fflush(nil)
            return Self.report(error)
        }
    }
}
