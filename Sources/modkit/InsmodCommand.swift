import Glibc
import ModKit

/// `modkit insmod`: loads one module file into the running daemon.
struct InsmodCommand: Command {
    static let name = "insmod"
    static let summary = "load a module file into the daemon"
    static let usage = "modkit insmod [-f] [--pass-fd] FILE [PARAM=VALUE ...]"
    static let discussion = """
        Reads FILE and sends its bytes and the parameters to the daemon in one request, which
        links the module and runs its init (Linux's init_module). With --pass-fd the daemon
        reads the file through a descriptor passed over the socket instead (finit_module).
        Parameters are joined with spaces; a value that contains a space is quoted.

        With -f the daemon loads the module even when its vermagic differs from the
        daemon's or the CRCs it recorded for imported symbols disagree with the exporters',
        and taints the module and the daemon with F.

        Exit status: 0 when the module was loaded, 1 when the daemon could not load it,
        2 for an invalid command line, 3 when no daemon accepts the connection at the socket
        ($MODKIT_SOCKET), 4 when the daemon rejects this client.
        """
    static let options = [
        OptionDefinition(long: "force", short: "f", help: "load despite a vermagic or symbol version mismatch, tainting with F"),
        OptionDefinition(long: "pass-fd", help: "pass an open descriptor of FILE instead of its contents"),
    ]

    let file: String
    let parameters: String
    let passesDescriptor: Bool
    let options: LoadOptions

    init(arguments: ParsedArguments) throws(UsageError) {
        let operands = arguments.positionals + arguments.passthrough
        guard let file = operands.first else { throw UsageError("missing module file") }
        self.file = file
        parameters = parameterString(Array(operands.dropFirst()))
        passesDescriptor = arguments.contains("pass-fd")
        options = arguments.contains("force") ? .force : []
    }

    func run() -> Int32 {
        do throws(ToolFailure) {
            try insert()
            return ExitStatus.success
        } catch {
            return Self.report(error)
        }
    }

    private func insert() throws(ToolFailure) {
        let reply: Reply
        if passesDescriptor {
            let descriptor = open(file, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else {
                throw ToolFailure("could not load module \(file): \(Errno(errno))")
            }
            defer { close(descriptor) }
            reply = try DaemonAccess.send(.loadFile(name: file, parameters: parameters, options: options), passing: descriptor)
        } else {
            let image = try readFileOrFail()
            reply = try DaemonAccess.send(.loadImage(name: file, image: image[...], parameters: parameters, options: options))
        }
        guard reply.succeeded else {
            throw ToolFailure(["could not insert module \(file): \(moduleErrorText(reply.status))"] + [reply.message])
        }
    }

    /// kmod's wording for a file it cannot read.
    private func readFileOrFail() throws(ToolFailure) -> [UInt8] {
        let descriptor = open(file, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ToolFailure("could not load module \(file): \(Errno(errno))") }
        close(descriptor)
        return try readFile(file)
    }
}
