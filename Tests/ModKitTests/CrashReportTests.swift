import Glibc
import Testing

/// End-to-end tests of the crash report that `modkit exec` prints when module code faults.
@Suite("crash reports")
struct CrashReportTests {
    private static let faultingModule = """
        #include <stdio.h>
        __attribute__((noinline)) int crashmod_fault(volatile int *pointer) { return *pointer + 1; }
        int main(void) {
            int value = crashmod_fault((volatile int *)0);
            printf("%d\\n", value);
            return 0;
        }
        """

    private func runFaultingModule() async throws -> ProcessResult {
        let directory = try TemporaryDirectory(prefix: "crash")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(Self.faultingModule, flags: ObjectBuilder.moduleFlags + ["-fno-omit-frame-pointer"],
                                                     name: "crashmod", in: directory)
        return try await ModkitTool.run(["exec", object])
    }

    @Test func nullDereferenceKillsWithSignal() async throws {
        let result = try await runFaultingModule()

        #expect(result.signal == SIGSEGV, "\(result)")
        #expect(result.standardOutput == "", "\(result)")
    }

    @Test func reportNamesSignalAndAddress() async throws {
        let result = try await runFaultingModule()

        #expect(result.standardError.hasPrefix("modkit: fatal signal 11 (SIGSEGV) at address 0x0, code 1\n"), "\(result)")
        #expect(result.standardError.contains("\nRIP: 0x"), "\(result)")
    }

    @Test func backtraceNamesModuleFunction() async throws {
        let result = try await runFaultingModule()
        let lines = result.standardError.split(separator: "\n")
        let trace = try #require(lines.firstIndex(of: "Call Trace:"), "\(result)")

        #expect(lines[trace + 1].contains(" crashmod_fault+0x"), "\(result)")
        #expect(lines[trace + 1].hasSuffix(" [crashmod]"), "\(result)")
        let mainLine = try #require(lines.first { $0.contains(" main+0x") }, "\(result)")
        #expect(mainLine.hasSuffix(" [crashmod]"), "\(result)")
    }

    @Test func reportListsModulesWithTaint() async throws {
        let result = try await runFaultingModule()
        let lines = result.standardError.split(separator: "\n")

        // A plain object declares no license, so it counts as proprietary (P).
        #expect(lines.count > 1)
        #expect(lines.dropFirst().first == "Tainted: P", "\(result)")
        #expect(result.standardError.hasSuffix("Modules linked in: crashmod(P)\n"), "\(result)")
    }

    @Test("daemon reports module crash")
    func daemonReport() async throws {
        let directory = try TemporaryDirectory(prefix: "crash")
        defer { directory.remove() }
        _ = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            __attribute__((noinline)) int crashcmd_fault(volatile int *pointer) { return *pointer; }
            static int crash_run(int argc, char **argv, struct modkit_output *out)
            {
                return crashcmd_fault((volatile int *)0);
            }
            static struct modkit_command crash_command = {
                .owner = THIS_MODULE, .name = "crash", .summary = "dereference NULL", .run = crash_run,
            };
            static int crashcmd_init(void) { return modkit_register_command(&crash_command); }
            static void crashcmd_exit(void) { modkit_unregister_command(&crash_command); }
            module_init(crashcmd_init);
            module_exit(crashcmd_exit);
            """, flags: ObjectBuilder.moduleFlags + ["-fno-omit-frame-pointer"], name: "crashcmd", in: directory)
        let daemon = try await RunningDaemon(in: directory)
        #expect(try await daemon.run(["insmod", "crashcmd.o"]).status == 0)

        let call = try await daemon.run(["call", "crash"])
        #expect(call.status != 0, "\(call)")
        let status = try await daemon.stop()
        #expect(daemon.process.terminationReason == .uncaughtSignal)
        #expect(status == SIGSEGV, "\(daemon.standardError)")
        let report = daemon.standardError
        // Built with plain cc, the module has no symbol versions, which taints it with F.
        #expect(report.contains("modkit: fatal signal 11 (SIGSEGV) at address 0x0, code 1\nTainted: F\n"), "\(report)")
        let frame = report.split(separator: "\n").first { $0.contains(" crashcmd_fault+0x") }
        #expect(frame?.hasSuffix(" [crashcmd]") == true, "\(report)")
        #expect(report.hasSuffix("Modules linked in: crashcmd(F)\n"), "\(report)")
    }
}
