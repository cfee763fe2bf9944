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

    @Test func reportListsModules() async throws {
        let result = try await runFaultingModule()

        #expect(result.standardError.hasSuffix("Modules linked in: crashmod\n"), "\(result)")
    }
}
