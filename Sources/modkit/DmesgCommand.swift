import Glibc
import ModKit

/// `modkit dmesg`: prints the daemon's log.
struct DmesgCommand: Command {
    static let name = "dmesg"
    static let summary = "print the messages of modules and of the daemon"
    static let usage = "modkit dmesg [-l LEVELS] [-w]"
    static let discussion = """
        Prints the daemon's ring buffer, oldest first, one '[seconds.microseconds] module: text'
        line per message, where the time counts from the daemon's start and messages of the
        daemon itself carry 'modkit'. LEVELS is a comma-separated list of emerg, alert, crit,
        err, warn, notice, info and debug. With -w, waits for new messages after printing the
        buffer, until the daemon stops or the tool is interrupted.
        """
    static let options = [
        OptionDefinition(long: "level", short: "l", valueName: "LEVELS", help: "print only messages of these levels"),
        OptionDefinition(long: "follow", short: "w", help: "wait for new messages"),
    ]

    let levels: Set<Int>?
    let follows: Bool

    init(arguments: ParsedArguments) throws(UsageError) {
        try Self.rejectOperands(arguments)
        follows = arguments.contains("follow")
        guard let text = arguments.value("level") else {
            levels = nil
            return
        }
        var levels = Set<Int>()
        for name in text.split(separator: ",") {
            guard let level = DaemonLog.levelNames.firstIndex(of: String(name)) else {
                throw UsageError("unknown level '\(name)'; expected \(DaemonLog.levelNames.joined(separator: ", "))")
            }
            levels.insert(level)
        }
        self.levels = levels
    }

    func run() -> Int32 {
        do throws(ToolFailure) {
            let client = try DaemonAccess.connect()
            defer { client.close() }
            let levels = levels
            let reply: Reply
            do {
                reply = try client.readLog(follow: follows) { entries in
                    var text = ""
                    for entry in entries where levels?.contains(entry.level) ?? true {
                        text += DaemonLog.format(entry, withLevel: false) + "\n"
                    }
                    print(text, terminator: "")
                    fflush(nil)
                }
            } catch {
                throw DaemonAccess.failure(error)
            }
            try DaemonAccess.checkAccepted(reply)
            guard reply.succeeded else { throw ToolFailure(reply.message) }
            return ExitStatus.success
        } catch {
            return Self.report(error)
        }
    }
}
