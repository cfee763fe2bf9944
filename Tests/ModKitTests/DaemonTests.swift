import Foundation
import ModKit
import Testing

/// End-to-end tests of `modkit host` and the kmod tools: each test starts a real daemon on a
/// socket in its own directory and drives it with the real `modkit` executable.
@Suite("modkit host and kmod tools")
struct DaemonTests {
    /// `lsmod --json` decoded, to learn the sizes that the table must show.
    private func moduleSizes(_ daemon: RunningDaemon) async throws -> [String: Int] {
        let result = try await daemon.run(["lsmod", "--json"])
        let array = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [[String: Any]] ?? []
        var sizes: [String: Int] = [:]
        for module in array { sizes[module["name"] as! String] = module["size"] as? Int }
        return sizes
    }

    @Test("insmod, lsmod and rmmod round trip")
    func insmodLsmodRmmod() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        let hello = try await compileExample("hello", in: directory)
        let daemon = try await RunningDaemon(in: directory)

        let insert = try await daemon.run(["insmod", hello])
        #expect(insert.status == 0, "\(insert)")
        #expect(insert.standardOutput == "", "\(insert)")
        #expect(insert.standardError == "", "\(insert)")

        let size = try #require(try await moduleSizes(daemon)["hello"])
        #expect(size > 0)
        let list = try await daemon.run(["lsmod"])
        #expect(list.status == 0, "\(list)")
        #expect(list.standardOutput == """
            Module                  Size  Used by
            hello              \(String(size).leftPadded(to: 9))  0

            """, "\(list)")

        let remove = try await daemon.run(["rmmod", "hello"])
        #expect(remove.status == 0, "\(remove)")
        #expect(remove.standardError == "", "\(remove)")
        let empty = try await daemon.run(["lsmod"])
        #expect(empty.standardOutput == "Module                  Size  Used by\n", "\(empty)")

        let log = try await daemon.run(["dmesg", "-l", "info"])
        #expect(logLines(log.standardOutput) == ["hello: Hello, world", "hello: Goodbye, world", "modkit: removed module hello"], "\(log)")
        #expect(try await daemon.stop() == 0)
    }

    @Test("insmod reports an unknown symbol like kmod")
    func insmodUnknownSymbol() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        // Compiled without modkit build, whose extra flags would move the offsets below.
        _ = try await ObjectBuilder.compile(file: PackagePaths.root + "/examples/calc.c", output: directory.file("calc.o"))
        let daemon = try await RunningDaemon(in: directory)

        let result = try await daemon.run(["insmod", "calc.o"])
        #expect(result.status == 1, "\(result)")
        #expect(result.standardOutput == "", "\(result)")
        #expect(result.standardError == """
            modkit insmod: ERROR: could not insert module calc.o: Unknown symbol in module
            undefined symbol: mathlib_add
            >>> referenced by calc.o:(.init.text+0x1e)
            undefined symbol: mathlib_multiply
            >>> referenced by calc.o:(.init.text+0xc)
            2 undefined symbols; load the modules that export them first

            """, "\(result)")
        let list = try await daemon.run(["lsmod"])
        #expect(list.standardOutput == "Module                  Size  Used by\n", "\(list)")
        try await daemon.stop()
    }

    @Test("insmod of a loaded module and of a missing file")
    func insmodErrors() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        _ = try await compileExample("hello", in: directory)
        let daemon = try await RunningDaemon(in: directory)

        #expect(try await daemon.run(["insmod", "hello.o"]).status == 0)
        let again = try await daemon.run(["insmod", "hello.o"])
        #expect(again.status == 1, "\(again)")
        #expect(again.standardError == """
            modkit insmod: ERROR: could not insert module hello.o: File exists
            hello.o: module hello is already loaded

            """, "\(again)")

        let missing = try await daemon.run(["insmod", "missing.o"])
        #expect(missing.status == 1, "\(missing)")
        #expect(missing.standardError == "modkit insmod: ERROR: could not load module missing.o: No such file or directory\n", "\(missing)")

        let garbage = try directory.write("not an object", to: "garbage.o")
        let invalid = try await daemon.run(["insmod", garbage])
        #expect(invalid.status == 1, "\(invalid)")
        #expect(invalid.standardError.hasPrefix("modkit insmod: ERROR: could not insert module \(garbage): Invalid module format\n"), "\(invalid)")
        try await daemon.stop()
    }

    @Test("insmod passes a descriptor with --pass-fd")
    func insmodPassFd() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        _ = try await compileExample("hello", in: directory)
        let daemon = try await RunningDaemon(in: directory)

        let insert = try await daemon.run(["insmod", "--pass-fd", "hello.o", "greeting=hi", "whom=Ada Lovelace"])
        #expect(insert.status == 0, "\(insert)")
        #expect(insert.standardError == "", "\(insert)")
        let log = try await daemon.run(["dmesg"])
        #expect(logLines(log.standardOutput, containing: "hello:") == ["hello: unknown parameter 'greeting' ignored", "hello: Hello, Ada Lovelace"], "\(log)")
        #expect(logLines(log.standardOutput, containing: "loaded module") == ["modkit: loaded module hello from hello.o (\(try await moduleSizes(daemon)["hello"]!) bytes) for pid \(logPid(log.standardOutput)) uid 0"])
        try await daemon.stop()
    }

    /// Returns the pid the daemon logged for the load, which is the insmod process.
    private func logPid(_ log: String) -> String {
        guard let line = logLines(log, containing: "loaded module").first, let range = line.range(of: "for pid ") else { return "" }
        return String(line[range.upperBound...].prefix { $0.isNumber })
    }

    @Test("rmmod refuses a library in use and unknown modules")
    func rmmodRefusals() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        _ = try await compileExample("mathlib", in: directory)
        _ = try await compileExample("calc", in: directory)
        let daemon = try await RunningDaemon(in: directory)
        #expect(try await daemon.run(["insmod", "mathlib.o"]).status == 0)
        #expect(try await daemon.run(["insmod", "calc.o"]).status == 0)

        let sizes = try await moduleSizes(daemon)
        let list = try await daemon.run(["lsmod"])
        #expect(list.standardOutput == """
            Module                  Size  Used by
            calc               \(String(sizes["calc"]!).leftPadded(to: 9))  0
            mathlib            \(String(sizes["mathlib"]!).leftPadded(to: 9))  1 calc

            """, "\(list)")

        let refused = try await daemon.run(["rmmod", "mathlib"])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.standardError == "modkit rmmod: ERROR: Module mathlib is in use by: calc\n", "\(refused)")

        let unknown = try await daemon.run(["rmmod", "nothing"])
        #expect(unknown.status == 1, "\(unknown)")
        #expect(unknown.standardError == "modkit rmmod: ERROR: Module nothing is not currently loaded\n", "\(unknown)")

        let both = try await daemon.run(["rmmod", "calc.o", "mathlib"])
        #expect(both.status == 0, "\(both)")
        #expect(both.standardError == "", "\(both)")
        try await daemon.stop()
    }

    @Test("lsmod prints JSON and a Graphviz graph")
    func lsmodFormats() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        _ = try await compileExample("mathlib", in: directory)
        _ = try await compileExample("calc", in: directory)
        let daemon = try await RunningDaemon(in: directory)
        #expect(try await daemon.run(["insmod", "mathlib.o"]).status == 0)
        #expect(try await daemon.run(["insmod", "calc.o"]).status == 0)
        let sizes = try await moduleSizes(daemon)

        let json = try await daemon.run(["lsmod", "--json"])
        #expect(json.standardOutput == """
            [
              {"name": "calc", "size": \(sizes["calc"]!), "refcount": 0, "state": "Live", "usedBy": [], "dependsOn": ["mathlib"], "taint": ""},
              {"name": "mathlib", "size": \(sizes["mathlib"]!), "refcount": 1, "state": "Live", "usedBy": ["calc"], "dependsOn": [], "taint": ""}
            ]

            """, "\(json)")
        let dot = try await daemon.run(["lsmod", "--dot"])
        #expect(dot.standardOutput == """
            digraph modules {
              "mathlib";
              "calc";
              "calc" -> "mathlib";
            }

            """, "\(dot)")
        let both = try await daemon.run(["lsmod", "--dot", "--json"])
        #expect(both.status == 2, "\(both)")
        try await daemon.stop()
    }

    @Test("modinfo reads a file without a daemon")
    func modinfoFile() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        let hello = try await compileExample("hello", in: directory)
        let environment = ["MODKIT_SOCKET": directory.file("none.sock"), "PATH": "/usr/bin:/bin"]

        let result = try await runProcess(ModkitTool.executablePath(), ["modinfo", hello], environment: environment)
        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput == """
            filename:       \(hello)
            name:           hello
            license:        GPL
            author:         ModKit examples
            description:    Logs a greeting when loaded and a farewell when removed
            version:        1.0
            alias:          greeting
            depends:        
            vermagic:       modkit-1 x86_64
            parm:           whom:Who to greet (charp)

            """, "\(result)")

        let field = try await runProcess(ModkitTool.executablePath(), ["modinfo", "-F", "license", hello], environment: environment)
        #expect(field.standardOutput == "GPL\n", "\(field)")

        let parameters = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            MODULE_INFO(parm, "count:How many times to greet");
            MODULE_INFO(parmtype, "count:int");
            MODULE_INFO(parmtype, "quiet:bool");
            """, name: "params", in: directory)
        let parm = try await runProcess(ModkitTool.executablePath(), ["modinfo", "-F", "parm", parameters], environment: environment)
        #expect(parm.standardOutput == "count:How many times to greet (int)\nquiet: (bool)\n", "\(parm)")

        let missing = try await runProcess(ModkitTool.executablePath(), ["modinfo", "--module-dir", directory.path, "nothing"],
                                           environment: environment)
        #expect(missing.status == 1, "\(missing)")
        #expect(missing.standardError == "modkit modinfo: ERROR: Module nothing not found.\n", "\(missing)")
    }

    @Test("depmod writes the index and modinfo finds modules by name")
    func depmodIndex() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        for name in ["hello", "mathlib", "calc", "commands"] { _ = try await compileExample(name, in: directory) }
        let environment = ["MODKIT_SOCKET": directory.file("none.sock"), "MODKIT_MODULE_PATH": directory.path]

        let result = try await runProcess(ModkitTool.executablePath(), ["depmod"], environment: environment)
        #expect(result.status == 0, "\(result)")
        #expect(result.standardError == "", "\(result)")
        #expect(try String(contentsOfFile: directory.file("modules.dep"), encoding: .utf8) == """
            calc.o: mathlib.o
            commands.o:
            hello.o:
            mathlib.o:

            """)
        #expect(try String(contentsOfFile: directory.file("modules.symbols"), encoding: .utf8) == """
            # Symbols exported by the modules of this directory; written by modkit depmod.
            alias symbol:mathlib_add mathlib
            alias symbol:mathlib_multiply mathlib

            """)
        #expect(try String(contentsOfFile: directory.file("modules.alias"), encoding: .utf8) == """
            # Aliases declared by the modules of this directory; written by modkit depmod.
            alias greeting hello

            """)

        let byAlias = try await runProcess(ModkitTool.executablePath(), ["modinfo", "-F", "filename", "greeting"], environment: environment)
        #expect(byAlias.standardOutput == directory.file("hello.o") + "\n", "\(byAlias)")
        let depends = try await runProcess(ModkitTool.executablePath(), ["modinfo", "-F", "depends", "calc"], environment: environment)
        #expect(depends.standardOutput == "mathlib\n", "\(depends)")
    }

    @Test("modprobe loads dependencies first and removes them after")
    func modprobeDependencies() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        for name in ["mathlib", "calc"] { _ = try await compileExample(name, in: directory) }
        let daemon = try await RunningDaemon(in: directory, arguments: ["--module-dir", directory.path])
        #expect(try await daemon.run(["depmod"]).status == 0)

        let show = try await daemon.run(["modprobe", "--show-depends", "calc", "verbose=1"])
        #expect(show.standardOutput == """
            insmod \(directory.file("mathlib.o")) 
            insmod \(directory.file("calc.o")) verbose=1

            """, "\(show)")

        let load = try await daemon.run(["modprobe", "calc"])
        #expect(load.status == 0, "\(load)")
        #expect(load.standardError == "", "\(load)")
        let log = try await daemon.run(["dmesg", "-l", "info"])
        #expect(logLines(log.standardOutput) == ["mathlib: mathlib ready", "calc: 2 + 3 = 5, 6 * 7 = 42"], "\(log)")
        let again = try await daemon.run(["modprobe", "calc"])
        #expect(again.status == 0, "\(again)")

        let missing = try await daemon.run(["modprobe", "nothing"])
        #expect(missing.status == 1, "\(missing)")
        #expect(missing.standardError == "modkit modprobe: FATAL: Module nothing not found in directory \(directory.path)\n", "\(missing)")

        let remove = try await daemon.run(["modprobe", "-r", "calc"])
        #expect(remove.status == 0, "\(remove)")
        let list = try await daemon.run(["lsmod"])
        #expect(list.standardOutput == "Module                  Size  Used by\n", "\(list)")
        try await daemon.stop()
    }

    @Test("modprobe applies options, aliases, blacklist and softdep")
    func modprobeConfiguration() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        for name in ["hello", "mathlib", "calc", "commands"] { _ = try await compileExample(name, in: directory) }
        let config = try directory.write("""
            # settings for the examples
            options calc verbose=1 \\
                    rounds=2
            alias arithmetic calc
            alias greeting-* hello
            blacklist hello
            softdep calc pre: commands post: hello
            install calc /bin/true

            """, to: "modkit.conf")
        let daemon = try await RunningDaemon(in: directory, arguments: ["--module-dir", directory.path, "--config", config])
        #expect(try await daemon.run(["depmod"]).status == 0)

        let show = try await daemon.run(["modprobe", "--show-depends", "arithmetic", "extra=3"])
        #expect(show.standardOutput == """
            insmod \(directory.file("commands.o")) 
            insmod \(directory.file("mathlib.o")) 
            insmod \(directory.file("calc.o")) verbose=1 rounds=2 extra=3
            insmod \(directory.file("hello.o")) 

            """, "\(show)")
        #expect(show.standardError == "modkit modprobe: WARNING: \(config):8: 'install' runs a shell command, which modkit does not support; line ignored\n", "\(show)")

        let blacklisted = try await daemon.run(["modprobe", "greeting-x"])
        #expect(blacklisted.status == 1, "\(blacklisted)")
        let byName = try await daemon.run(["modprobe", "arithmetic"])
        #expect(byName.status == 0, "\(byName)")
        let log = try await daemon.run(["dmesg", "-l", "info,warn"])
        #expect(logLines(log.standardOutput) == [
            "mathlib: mathlib ready",
            "calc: unknown parameter 'verbose' ignored", "calc: unknown parameter 'rounds' ignored",
            "calc: 2 + 3 = 5, 6 * 7 = 42", "hello: Hello, world",
        ], "\(log)")
        try await daemon.stop()
    }

    @Test("call runs a module command")
    func callCommand() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        _ = try await compileExample("commands", in: directory)
        let daemon = try await RunningDaemon(in: directory)
        #expect(try await daemon.run(["insmod", "commands.o"]).status == 0)

        let greet = try await daemon.run(["call", "greet", "Ada", "-x"])
        #expect(greet.status == 0, "\(greet)")
        #expect(greet.standardOutput == "Hello, Ada!\nHello, -x!\n", "\(greet)")

        let list = try await daemon.run(["call"])
        #expect(list.standardOutput == """
            greet  print a greeting for each argument [commands]
            sleep  wait MILLISECONDS, then return [commands]

            """, "\(list)")

        let failing = try await daemon.run(["call", "sleep"])
        #expect(failing.status == 1, "\(failing)")
        #expect(failing.standardOutput == "usage: sleep MILLISECONDS\n", "\(failing)")
        #expect(failing.standardError == "modkit call: ERROR: command sleep failed with status -22 (Invalid argument)\n", "\(failing)")

        let unknown = try await daemon.run(["call", "nothing"])
        #expect(unknown.status == 1, "\(unknown)")
        #expect(unknown.standardError == "modkit call: ERROR: command nothing not found\nhint: 'modkit call' lists the registered commands\n", "\(unknown)")
        try await daemon.stop()
    }

    @Test("rmmod -w waits for a running command")
    func rmmodWaitsForCommand() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        _ = try await compileExample("commands", in: directory)
        let daemon = try await RunningDaemon(in: directory)
        #expect(try await daemon.run(["insmod", "commands.o"]).status == 0)

        // Long enough that the checks below run while it sleeps, even on a machine busy with
        // parallel builds, where starting each tool process took up to several seconds. The
        // call starts as a plain process, not in a task, so that it does not wait for a thread
        // of the test's concurrency pool, and the reference count is read in-process.
        let call = Process()
        call.executableURL = URL(fileURLWithPath: try ModkitTool.executablePath())
        call.arguments = ["call", "sleep", "20000"]
        call.environment = daemon.environment
        let callOutput = directory.file("call.stdout")
        _ = FileManager.default.createFile(atPath: callOutput, contents: nil)
        call.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: callOutput))
        try call.run()
        let deadline = ContinuousClock.now + .seconds(90)
        while try referenceCount(daemon, "commands") == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        try #require(try referenceCount(daemon, "commands") == 1)

        let refused = try await daemon.run(["rmmod", "commands"])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.standardError == """
            modkit rmmod: ERROR: Module commands is in use (reference count 1)

            """, "\(refused)")

        let waited = try await daemon.run(["rmmod", "-w", "commands"])
        #expect(waited.status == 0, "\(waited)")
        while call.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        #expect(call.terminationStatus == 0)
        #expect(try String(contentsOfFile: callOutput, encoding: .utf8) == "slept 20000 ms\n")
        let list = try await daemon.run(["lsmod"])
        #expect(list.standardOutput == "Module                  Size  Used by\n", "\(list)")
        try await daemon.stop()
    }

    /// Returns the reference count of module `name` from the daemon's list, or -1 when it is
    /// not loaded.
    private func referenceCount(_ daemon: RunningDaemon, _ name: String) throws -> Int {
        let client = try DaemonClient(path: daemon.socket, replyTimeout: .seconds(20))
        defer { client.close() }
        let records = try client.send(.list).fields.records(.module).map(ModuleRecord.init)
        return records.first { $0.name == name }?.referenceCount ?? -1
    }

    @Test("concurrent loads of one module load it once")
    func concurrentLoads() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        _ = try await compileExample("hello", in: directory)
        let daemon = try await RunningDaemon(in: directory)

        let results = try await withThrowingTaskGroup(of: ProcessResult.self) { group in
            for index in 0 ..< 6 {
                group.addTask { try await daemon.run(index % 2 == 0 ? ["insmod", "hello.o"] : ["insmod", "--pass-fd", "hello.o"]) }
                group.addTask { try await daemon.run(["lsmod"]) }
            }
            var results: [ProcessResult] = []
            for try await result in group { results.append(result) }
            return results
        }
        let loads = results.filter { $0.command.contains("insmod") }
        #expect(loads.filter { $0.status == 0 }.count == 1, "\(loads)")
        #expect(loads.filter { $0.standardError.contains("File exists") }.count == 5, "\(loads)")
        #expect(results.filter { $0.command.contains("lsmod") }.allSatisfy { $0.status == 0 })
        let log = try await daemon.run(["dmesg", "-l", "info"])
        #expect(logLines(log.standardOutput) == ["hello: Hello, world"], "\(log)")
        try await daemon.stop()
    }

    @Test("different modules load concurrently")
    func concurrentDifferentModules() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        let names = ["hello", "mathlib", "commands"]
        for name in names { _ = try await compileExample(name, in: directory) }
        let daemon = try await RunningDaemon(in: directory)

        let statuses = try await withThrowingTaskGroup(of: Int32.self) { group in
            for name in names { group.addTask { try await daemon.run(["insmod", "\(name).o"]).status } }
            var statuses: [Int32] = []
            for try await status in group { statuses.append(status) }
            return statuses
        }
        #expect(statuses == [0, 0, 0])
        #expect(try await moduleSizes(daemon).keys.sorted() == ["commands", "hello", "mathlib"])
        try await daemon.stop()
    }

    @Test("module info, symbols and taint")
    func infoSymbolsTaint() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        _ = try await compileExample("mathlib", in: directory)
        _ = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("Proprietary");
            static int closed_init(void) { return 0; }
            module_init(closed_init);
            """, name: "closed", in: directory)
        let daemon = try await RunningDaemon(in: directory)
        #expect(try await daemon.run(["insmod", "mathlib.o"]).status == 0)

        let client = try DaemonClient(path: daemon.socket, replyTimeout: .seconds(20))
        defer { client.close() }
        let info = try client.send(.moduleInfo(name: "mathlib"))
        #expect(try ModuleRecord(info.fields).files == ["mathlib.o"])
        #expect(try info.fields.records(.infoEntry).map { try $0.string(.key) ?? "" }.sorted() == ["author", "description", "license", "vermagic", "version"])
        let symbols = try client.send(.symbols(module: nil)).fields.records(.symbol).map(SymbolRecord.init)
        #expect(symbols.map(\.name) == ["mathlib_add", "mathlib_multiply"])
        #expect(symbols.map(\.gplOnly) == [false, true])
        #expect(symbols.allSatisfy { $0.owner == "mathlib" && $0.address != 0 })
        let unknown = try client.send(.moduleInfo(name: "nothing"))
        #expect(unknown.status == ENOENT)
        #expect(unknown.message == "module nothing is not loaded")

        #expect(try await daemon.run(["insmod", "closed.o"]).status == 0)
        let tainted = try await daemon.run(["lsmod"])
        #expect(lsmodLine(tainted.standardOutput, module: "closed")?.hasSuffix("  0 (P)") == true, "\(tainted)")
        let refused = try await daemon.run(["rmmod", "closed"])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.standardError == """
            modkit rmmod: ERROR: Module closed is in use
            module closed has an init function but no exit function, so it cannot be removed without force

            """, "\(refused)")
        #expect(try await daemon.run(["rmmod", "-f", "closed"]).status == 0)
        let status = try await daemon.run(["status"])
        #expect(status.standardOutput.contains("\ntaint:              PR\n"), "\(status)")
        #expect(logLines(daemon.standardError, containing: "tainted") == [
            "warn: closed: module license 'Proprietary' is not GPL-compatible; the host is tainted (P)",
            "warn: closed: removed by force; the host is tainted (R)",
        ])
        try await daemon.stop()
    }

    @Test("missing daemon gives a hint")
    func missingDaemon() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        let socket = directory.file("none.sock")
        let result = try await runProcess(ModkitTool.executablePath(), ["lsmod"], environment: ["MODKIT_SOCKET": socket])
        #expect(result.status == 3, "\(result)")
        #expect(result.standardError == """
            modkit lsmod: ERROR: cannot connect to the modkit daemon: connect \(socket): No such file or directory
            hint: start the daemon with 'modkit host --socket \(socket) &' or 'modkit host --socket \(socket) --daemon --pid-file FILE', or set MODKIT_SOCKET to its socket

            """, "\(result)")
    }

    @Test("socket is private to its owner")
    func socketMode() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        let daemon = try await RunningDaemon(in: directory)
        let attributes = try FileManager.default.attributesOfItem(atPath: daemon.socket)
        #expect(attributes[.posixPermissions] as? Int == 0o600)
        #expect(attributes[.type] as? FileAttributeType == .typeSocket)

        let second = try await runProcess(ModkitTool.executablePath(), ["host", "--socket", daemon.socket], timeout: .seconds(30))
        #expect(second.status == 1, "\(second)")
        #expect(second.standardError == "modkit host: error: cannot listen on \(daemon.socket): bind \(daemon.socket): Address already in use\n", "\(second)")
        try await daemon.stop()
    }

    @Test("another user is rejected")
    func peerCheck() async throws {
        let setpriv = "/usr/bin/setpriv"
        guard FileManager.default.isExecutableFile(atPath: setpriv), getuid() == 0 else {
            Issue.record("this test needs root and \(setpriv) (util-linux) to run a client as uid 65534; neither check ran")
            return
        }
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        // uid 65534 must reach the socket and run a copy of the tool.
        chmod(directory.path, 0o755)
        let tool = directory.file("modkit")
        try FileManager.default.copyItem(atPath: try ModkitTool.executablePath(), toPath: tool)
        let daemon = try await RunningDaemon(in: directory)
        let asNobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", tool, "lsmod"]

        let denied = try await runProcess(asNobody[0], Array(asNobody.dropFirst()), environment: ["MODKIT_SOCKET": daemon.socket])
        #expect(denied.status == 3, "\(denied)")
        #expect(denied.standardError == """
            modkit lsmod: ERROR: cannot connect to the modkit daemon: connect \(daemon.socket): Permission denied
            hint: the socket belongs to another user; run the tool as that user or as root

            """, "\(denied)")

        // With the file mode opened up by mistake, the peer check still rejects the client.
        chmod(daemon.socket, 0o666)
        let rejected = try await runProcess(asNobody[0], Array(asNobody.dropFirst()), environment: ["MODKIT_SOCKET": daemon.socket])
        #expect(rejected.status == 4, "\(rejected)")
        #expect(rejected.standardError == "modkit lsmod: ERROR: the daemon rejected the request: permission denied: this daemon serves only root, not uid 65534\n", "\(rejected)")
        #expect(logLines(daemon.standardError, containing: "rejected a connection").count == 1, "\(daemon.standardError)")
        #expect(try await daemon.run(["lsmod"]).status == 0)
        try await daemon.stop()
    }

    @Test("shutdown removes users before libraries")
    func shutdownOrder() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        for name in ["hello", "mathlib", "calc"] { _ = try await compileExample(name, in: directory) }
        let daemon = try await RunningDaemon(in: directory, arguments: ["--shutdown-timeout", "5"])
        for name in ["mathlib", "hello", "calc"] { #expect(try await daemon.run(["insmod", "\(name).o"]).status == 0) }

        #expect(try await daemon.stop(signal: SIGINT) == 0)
        #expect(logLines(daemon.standardError, containing: "info:") == [
            "info: mathlib: mathlib ready", "info: hello: Hello, world", "info: calc: 2 + 3 = 5, 6 * 7 = 42",
            "info: calc: calc unloaded", "info: modkit: removed module calc",
            "info: hello: Goodbye, world", "info: modkit: removed module hello",
            "info: mathlib: mathlib unloaded", "info: modkit: removed module mathlib",
        ], "\(daemon.standardError)")
        #expect(logLines(daemon.standardError, containing: "shutting down") == ["notice: modkit: shutting down: received SIGINT"])
        #expect(!FileManager.default.fileExists(atPath: daemon.socket))
    }

    @Test("daemon mode detaches and writes a pid file")
    func daemonMode() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        let socket = directory.file("modkit.sock")
        let pidFile = directory.file("modkit.pid")

        let start = try await runProcess(ModkitTool.executablePath(), ["host", "--socket", socket, "--daemon", "--pid-file", pidFile],
                                         timeout: .seconds(30))
        #expect(start.status == 0, "\(start)")
        let pidText = try String(contentsOfFile: pidFile, encoding: .utf8)
        let pid = try #require(Int32(pidText.dropLast()))
        #expect(pidText == "\(pid)\n")

        let status = try await runProcess(ModkitTool.executablePath(), ["status"], environment: ["MODKIT_SOCKET": socket])
        #expect(status.status == 0, "\(status)")
        #expect(status.standardOutput.hasPrefix("socket:             \(socket)\npid:                \(pid)\n"), "\(status)")

        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(20)
        while kill(pid, 0) == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(kill(pid, 0) != 0)
        #expect(!FileManager.default.fileExists(atPath: socket))
        #expect(!FileManager.default.fileExists(atPath: pidFile))

        let noPidFile = try await runProcess(ModkitTool.executablePath(), ["host", "--socket", socket, "--daemon"])
        #expect(noPidFile.status == 2, "\(noPidFile)")
    }

    @Test("dmesg follows new messages")
    func dmesgFollow() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        _ = try await compileExample("hello", in: directory)
        let daemon = try await RunningDaemon(in: directory)
        let follower = Task { try await daemon.run(["dmesg", "-w", "-l", "info"]) }
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await daemon.run(["insmod", "hello.o"]).status == 0)
        #expect(try await daemon.run(["rmmod", "hello"]).status == 0)
        try await Task.sleep(for: .milliseconds(700))
        try await daemon.stop()

        let followed = try await follower.value
        #expect(followed.status == 0, "\(followed)")
        #expect(logLines(followed.standardOutput) == ["hello: Hello, world", "hello: Goodbye, world", "modkit: removed module hello"], "\(followed)")
    }

    @Test("status describes the daemon")
    func status() async throws {
        let directory = try TemporaryDirectory(prefix: "daemon")
        defer { directory.remove() }
        let daemon = try await RunningDaemon(in: directory, arguments: ["--module-dir", directory.path, "--max-image-size", "4096"])
        let result = try await daemon.run(["status"])
        let lines = result.standardOutput.split(separator: "\n").map(String.init)
        #expect(result.status == 0, "\(result)")
        #expect(lines.count == 11, "\(result)")
        #expect(lines.first == "socket:             \(daemon.socket)")
        #expect(lines.contains("protocol version:   1"))
        #expect(lines.contains("taint:              none"))
        #expect(lines.contains("module directory:   \(directory.path)"))
        #expect(lines.contains("max image size:     4096 bytes"))
        #expect(lines.last == "modules loaded:     0")
        try await daemon.stop()
    }
}

extension String {
    /// Padded with spaces on the left to `width`.
    func leftPadded(to width: Int) -> String {
        String(repeating: " ", count: max(0, width - count)) + self
    }
}
