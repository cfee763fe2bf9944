import Foundation
import Testing
@testable import ModKit

@Suite("Version checks in the daemon")
struct ModuleVersionDaemonTests {
    @Test("insmod rejects a mismatch, -f loads it with F")
    func insmodForce() async throws {
        let directory = try TemporaryDirectory(prefix: "versions")
        defer { directory.remove() }
        _ = try await compileExample("mathlib", in: directory)
        _ = try await compileExample("calc", in: directory)
        // mathlib_add now takes ints, so calc's recorded CRC no longer matches.
        let changed = try String(contentsOfFile: PackagePaths.root + "/examples/mathlib.c", encoding: .utf8)
            .replacingOccurrences(of: "long mathlib_add(long a, long b)", with: "long mathlib_add(int a, int b)")
        _ = try directory.write(changed, to: "mathlib.c")
        let rebuilt = try await ModkitTool.run(["build", "mathlib.c"], currentDirectory: directory.path)
        #expect(rebuilt.status == 0, "\(rebuilt)")

        let daemon = try await RunningDaemon(in: directory)
        #expect(try await daemon.run(["insmod", "mathlib.o"]).status == 0)
        let refused = try await daemon.run(["insmod", "calc.o"])
        #expect(refused.status == 1)
        #expect(refused.standardError.hasPrefix("""
            modkit insmod: ERROR: could not insert module calc.o: Invalid module format
            calc.o: calc: disagrees about version of symbol mathlib_add
            """), "\(refused)")

        let forced = try await daemon.run(["insmod", "-f", "calc.o"])
        #expect(forced.status == 0, "\(forced)")
        let lsmod = try await daemon.run(["lsmod"])
        #expect(lsmodLine(lsmod.standardOutput, module: "calc")?.hasSuffix("  0 (F)") == true, "\(lsmod)")
        #expect(lsmodLine(lsmod.standardOutput, module: "mathlib")?.hasSuffix(" calc") == true, "\(lsmod)")
        let status = try await daemon.run(["status"])
        #expect(status.standardOutput.contains("\ntaint:              F\n"), "\(status)")
        #expect(logLines(daemon.standardError, containing: "tainted") == [
            "warn: calc: disagrees about version of symbol mathlib_add, loaded by force; the host is tainted (F)",
        ])
        try await daemon.stop()
    }

    @Test("unversioned module shows (F) in lsmod")
    func unversionedInLsmod() async throws {
        let directory = try TemporaryDirectory(prefix: "versions")
        defer { directory.remove() }
        _ = try await ObjectBuilder.compile(file: PackagePaths.root + "/examples/hello.c", output: directory.file("hello.o"))
        let daemon = try await RunningDaemon(in: directory)
        #expect(try await daemon.run(["insmod", "hello.o"]).status == 0)
        let lsmod = try await daemon.run(["lsmod"])
        #expect(lsmodLine(lsmod.standardOutput, module: "hello")?.hasSuffix("  0 (F)") == true, "\(lsmod)")
        #expect(logLines(daemon.standardError, containing: "tainted") == [
            "warn: hello: no versions for imported symbols (_modkit_printk); build it with modkit build; the host is tainted (F)",
        ])
        try await daemon.stop()
    }

    @Test("modprobe loads a module built against another's symvers")
    func modprobeVersioned() async throws {
        let directory = try TemporaryDirectory(prefix: "versions")
        defer { directory.remove() }
        for name in ["mathlib", "calc"] { _ = try await compileExample(name, in: directory) }
        let daemon = try await RunningDaemon(in: directory, arguments: ["--module-dir", directory.path])
        #expect(try await daemon.run(["depmod"]).status == 0)
        let probe = try await daemon.run(["modprobe", "calc"])
        #expect(probe.status == 0, "\(probe)")
        let lsmod = try await daemon.run(["lsmod"])
        #expect(!lsmod.standardOutput.contains("(F)"), "\(lsmod)")
        #expect(lsmodLine(lsmod.standardOutput, module: "mathlib")?.hasSuffix("  1 calc") == true, "\(lsmod)")
        #expect(try await daemon.run(["status"]).standardOutput.contains("\ntaint:              none\n"))
        try await daemon.stop()
    }

    @Test("modprobe --force-vermagic loads an old module with F")
    func modprobeForceVermagic() async throws {
        let directory = try TemporaryDirectory(prefix: "versions")
        defer { directory.remove() }
        _ = try await ObjectBuilder.compile("""
            static const char vermagic[] __attribute__((used, section(".modinfo"))) = "vermagic=modkit-0 x86_64";
            static const char license[] __attribute__((used, section(".modinfo"))) = "license=GPL";
            int old_function(void) { return 1; }
            """, name: "old", in: directory)
        let daemon = try await RunningDaemon(in: directory, arguments: ["--module-dir", directory.path])
        #expect(try await daemon.run(["depmod"]).status == 0)
        let refused = try await daemon.run(["modprobe", "old"])
        #expect(refused.status == 1)
        #expect(refused.standardError.contains("old.o: old: version magic 'modkit-0 x86_64' should be 'modkit-1 x86_64'"), "\(refused)")
        let wrongCheck = try await daemon.run(["modprobe", "--force-modversion", "old"])
        #expect(wrongCheck.status == 1)
        let forced = try await daemon.run(["modprobe", "--force-vermagic", "old"])
        #expect(forced.status == 0, "\(forced)")
        #expect(try await daemon.run(["lsmod"]).standardOutput.contains("(F)"))
        try await daemon.stop()
    }

    @Test("modinfo shows vermagic once")
    func modinfoVermagic() async throws {
        let directory = try TemporaryDirectory(prefix: "versions")
        defer { directory.remove() }
        let object = try await compileExample("mathlib", in: directory)
        let result = try await runProcess(ModkitTool.executablePath(), ["modinfo", object], environment: ["MODKIT_SOCKET": directory.file("none.sock")])
        #expect(result.standardOutput.hasSuffix("depends:        \nvermagic:       modkit-1 x86_64\n"), "\(result)")
        let field = try await runProcess(ModkitTool.executablePath(), ["modinfo", "-F", "vermagic", object], environment: ["MODKIT_SOCKET": directory.file("none.sock")])
        #expect(field.standardOutput == "modkit-1 x86_64\n", "\(field)")
    }

    @Test("load flags round trip and unknown flags are rejected")
    func loadFlags() throws {
        let request = Request.loadFile(name: "a.o", parameters: "", options: .force)
        let decoded = try Request(type: .loadFile, payload: request.encodedPayload().bytes[...])
        guard case .loadFile(_, _, let options) = decoded else {
            Issue.record("decoded \(decoded)")
            return
        }
        #expect(options == .force)

        var writer = FieldWriter()
        writer.append(.name, "a.o")
        writer.append(.flags, UInt64(4))
        #expect {
            try Request(type: .loadFile, payload: writer.bytes[...])
        } throws: { error in
            (error as? ProtocolError)?.message == "loadFile request has unknown flags 0x4"
        }
    }
}
