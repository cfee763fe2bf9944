import Glibc
import ModKit

/// `modkit rmmod`: removes modules from the running daemon.
struct RmmodCommand: Command {
    static let name = "rmmod"
    static let summary = "remove modules from the daemon"
    static let usage = "modkit rmmod [-w|--wait] [-f|--force] NAME..."
    static let discussion = """
        Removes each named module; NAME may also be a file name such as dir/hello.o. A module
        that other modules use is never removed. A module that holds references is removed
        only with --wait, once the last reference is dropped, or with --force, which runs its
        exit at once and taints the daemon (R): code still running in the module will crash.

        Exit status: 0 when every module was removed, 1 when one could not be, 2 for an
        invalid command line, 3 when no daemon accepts the connection, 4 when the daemon
        rejects this client.
        """
    static let options = [
        OptionDefinition(long: "wait", short: "w", help: "wait until the module is unused, then remove it"),
        OptionDefinition(long: "force", short: "f", help: "remove the module even while it is in use (dangerous)"),
    ]

    let names: [String]
    let waits: Bool
    let forces: Bool

    init(arguments: ParsedArguments) throws(UsageError) {
        names = (arguments.positionals + arguments.passthrough).map(moduleName(fromArgument:))
        guard !names.isEmpty else { throw UsageError("missing module name") }
        waits = arguments.contains("wait")
        forces = arguments.contains("force")
    }

    func run() -> Int32 {
        var status = ExitStatus.success
        for name in names {
            do throws(ToolFailure) {
                try Self.remove(name, wait: waits, force: forces)
            } catch {
                status = Self.report(error)
                if error.status != ExitStatus.failure { return status }
            }
        }
        return status
    }

    /// Removes one module and words a refusal as kmod's rmmod does.
    static func remove(_ name: String, wait: Bool, force: Bool) throws(ToolFailure) {
        let reply = try DaemonAccess.send(.remove(name: name, wait: wait, force: force, timeout: nil))
        guard !reply.succeeded else { return }
        let users = (try? reply.fields.strings(.user)) ?? []
        switch reply.status {
        case ENOENT:
            throw ToolFailure("Module \(name) is not currently loaded")
        case EBUSY where !users.isEmpty:
            throw ToolFailure("Module \(name) is in use by: \(users.joined(separator: " "))")
        case EBUSY:
            // A rejection because references are held carries the count, and its message adds
            // nothing else. Other rejections give their reason on a second line.
            if let count = try? reply.fields.int64(.referenceCount), count > 0 {
                throw ToolFailure("Module \(name) is in use (reference count \(count))")
            }
            throw ToolFailure(["Module \(name) is in use", reply.message])
        case ENOSYS:
            throw ToolFailure(["Module unloading is not supported", reply.message])
        default:
            throw ToolFailure(["could not remove module \(name): \(String(cString: strerror(reply.status)))", reply.message])
        }
    }
}
