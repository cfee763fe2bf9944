import Foundation
import Testing

/// End-to-end tests of `modkit stress`, run on the example module `examples/stress.c`.
@Suite("modkit stress")
struct StressCommandTests {
    /// The numbers of the summary line that `modkit stress` ends with.
    struct Summary: Equatable {
        var cycles: Int
        var ran: Int
        var failed: Int
        var crashes: Int
        /// Nil when the line reads `maps delta unknown`.
        var mapsDelta: Int?
        var residentDeltaKiB: Int?

        /// Parses `N cycles, C calls ran, F calls failed cleanly, K crashes, maps delta D, rss delta R KiB`,
        /// or the form with `maps delta unknown, rss delta unknown`.
        init?(_ line: Substring) {
            let pattern = /(\d+) cycles, (\d+) calls ran, (\d+) calls failed cleanly, (\d+) crashes, maps delta (-?\d+|unknown), rss delta (-?\d+ KiB|unknown)/
            guard let match = line.wholeMatch(of: pattern) else { return nil }
            cycles = Int(match.1)!
            ran = Int(match.2)!
            failed = Int(match.3)!
            crashes = Int(match.4)!
            mapsDelta = Int(match.5)
            residentDeltaKiB = Int(match.6.split(separator: " ")[0])
        }
    }

    static let usageLine = "usage: modkit stress [--cycles N] [--callers T] [--command NAME] [-v] OBJECT... [-- ARGS...]"

    @Test("thousands of cycles leave nothing behind")
    func cyclesWithTwoCallers() async throws {
        let directory = try TemporaryDirectory(prefix: "stress")
        defer { directory.remove() }
        let object = try await compileExample("stress", in: directory)

        let result = try await ModkitTool.run(["stress", "--cycles", "3000", "--callers", "2", object])
        let lines = result.standardOutput.split(separator: "\n")

        #expect(result.status == 0, "\(result)")
        #expect(result.standardError == "", "\(result)")
        #expect(lines.count == 1, "\(result)")
        let summary = try #require(lines.last.flatMap { Summary($0) }, "\(result)")
        #expect(summary.cycles == 3000)
        #expect(summary.ran > 0)
        #expect(summary.crashes == 0)
        #expect(summary.mapsDelta == 0)
        #expect(summary.residentDeltaKiB != nil)
        print("stress: " + result.standardOutput, terminator: "")
    }

    @Test("crash in the command counts one crash")
    func crashingCommand() async throws {
        let directory = try TemporaryDirectory(prefix: "stress")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(commandModule("stress_crash", body: """
            *(volatile int *)0 = 1;
            return 0;
            """), name: "crash", in: directory)

        let result = try await ModkitTool.run(["stress", "--cycles", "10", object])
        let summary = result.standardOutput.split(separator: "\n").last.flatMap { Summary($0) }

        #expect(result.status == 1, "\(result)")
        #expect(summary?.crashes == 1, "\(result)")
        #expect(summary?.mapsDelta == nil, "\(result)")
        #expect(summary?.residentDeltaKiB == nil, "\(result)")
        #expect(result.standardError.contains("fatal signal 11 (SIGSEGV)"), "\(result)")
        #expect(result.standardError.hasSuffix("modkit stress: error: the worker process died of SIGSEGV before the warm-up cycles ended\n"),
                "\(result)")
    }

    @Test("missing object file")
    func missingObject() async throws {
        let directory = try TemporaryDirectory(prefix: "stress")
        defer { directory.remove() }
        let path = directory.file("missing.o")

        let result = try await ModkitTool.run(["stress", path])

        #expect(result.status == 1)
        #expect(result.standardOutput == "")
        #expect(result.standardError == "modkit stress: error: \(path): cannot open: No such file or directory\n")
    }

    @Test("unknown command name")
    func unknownCommand() async throws {
        let directory = try TemporaryDirectory(prefix: "stress")
        defer { directory.remove() }
        let object = try await compileExample("stress", in: directory)

        let result = try await ModkitTool.run(["stress", "--command", "stress_sleep", object])

        #expect(result.status == 1)
        #expect(result.standardOutput == "")
        #expect(result.standardError == "modkit stress: error: command 'stress_sleep' not found in module stress; it registers: stress_check\n")
    }

    @Test("several commands need --command")
    func severalCommands() async throws {
        let directory = try TemporaryDirectory(prefix: "stress")
        defer { directory.remove() }
        let object = try await compileExample("commands", in: directory)

        let result = try await ModkitTool.run(["stress", object])

        #expect(result.status == 1)
        #expect(result.standardOutput == "")
        #expect(result.standardError == "modkit stress: error: module commands registers 2 commands (greet, sleep); choose one with --command NAME\n")
    }

    @Test("module without commands")
    func moduleWithoutCommands() async throws {
        let directory = try TemporaryDirectory(prefix: "stress")
        defer { directory.remove() }
        let object = try await compileExample("hello", in: directory)

        let result = try await ModkitTool.run(["stress", object])

        #expect(result.status == 1)
        #expect(result.standardOutput == "")
        #expect(result.standardError == """
            modkit stress: error: module hello registers no commands; modkit stress calls a command that the module registers with modkit_register_command

            """)
    }

    @Test("invalid option values", arguments: [
        (["--cycles", "0"], "invalid value '0' for --cycles; expected a positive integer"),
        (["--cycles", "many"], "invalid value 'many' for --cycles; expected a positive integer"),
        (["--cycles", "-5"], "invalid value '-5' for --cycles; expected a positive integer"),
        (["--callers", "0"], "invalid value '0' for --callers; expected an integer from 1 to 256"),
        (["--callers", "257"], "invalid value '257' for --callers; expected an integer from 1 to 256"),
        (["--command="], "invalid value '' for --command; expected a command name"),
    ])
    func invalidOptionValues(options: [String], message: String) async throws {
        let result = try await ModkitTool.run(["stress"] + options + ["stress.o"])

        #expect(result.status == 2)
        #expect(result.standardOutput == "")
        #expect(result.standardError == "modkit stress: \(message)\n\(Self.usageLine)\nRun 'modkit stress --help' for more information.\n")
    }

    @Test("missing object operand")
    func missingOperand() async throws {
        let result = try await ModkitTool.run(["stress", "--cycles", "5"])

        #expect(result.status == 2)
        #expect(result.standardError == "modkit stress: missing object file\n\(Self.usageLine)\nRun 'modkit stress --help' for more information.\n")
    }
}
