import ModKit

/// `modkit status`: describes the running daemon.
struct StatusCommand: Command {
    static let name = "status"
    static let summary = "describe the running daemon"
    static let usage = "modkit status"
    static let discussion = """
        Prints the daemon's socket, process ID, version, protocol version, reference counting
        mode, module area, taint, module directory, configuration file, image size limit and
        number of loaded modules. Exits with 3 when no daemon accepts the connection.
        """
    static let options: [OptionDefinition] = []

    init(arguments: ParsedArguments) throws(UsageError) {
        try Self.rejectOperands(arguments)
    }

    func run() -> Int32 {
        do throws(ToolFailure) {
            let client = try DaemonAccess.connect()
            defer { client.close() }
            let reply = try DaemonAccess.send(.daemonInfo, on: client)
            guard reply.succeeded else { throw ToolFailure(reply.message) }
            let info: DaemonInfo
            do throws(ProtocolError) {
                info = try DaemonInfo(reply.fields)
            } catch {
                throw ToolFailure("invalid reply from the daemon: \(error)", status: ExitStatus.rejected)
            }
            let modules = try ModprobeCommand.loadedModules()
            print(Self.describe(info, socket: client.path, moduleCount: modules.count), terminator: "")
            return ExitStatus.success
        } catch {
            return Self.report(error)
        }
    }

    static func describe(_ info: DaemonInfo, socket: String, moduleCount: Int) -> String {
        let area = info.areaSize == 0 ? "not reserved yet"
            : "0x\(String(info.areaStart, radix: 16))-0x\(String(info.areaStart + UInt64(info.areaSize), radix: 16)) (\(info.areaSize >> 20) MiB)"
        let lines: [(String, String)] = [
            ("socket", socket),
            ("pid", String(info.processID)),
            ("version", info.version),
            ("protocol version", String(info.protocolVersion)),
            ("reference counting", info.referenceMode),
            ("module area", area),
            ("taint", info.taint.isEmpty ? "none" : info.taint),
            ("module directory", info.moduleDirectory ?? "none"),
            ("config file", info.configFile ?? "none"),
            ("max image size", "\(info.maxImageSize) bytes"),
            ("modules loaded", String(moduleCount)),
        ]
        return lines.map { ($0.0 + ":").padding(to: 20) + $0.1 + "\n" }.joined()
    }
}
