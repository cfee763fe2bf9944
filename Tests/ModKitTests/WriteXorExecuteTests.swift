@testable import ModKit
import Testing

/// No mapping of the process is writable and executable after any stage of a load or removal.
///
/// The checker that `WriteXorExecuteChecker` installs runs after every stage of every load in
/// the test process, so the other suites are checked too. This suite makes sure that the
/// checker runs at all, and covers each kind of module once with its removal.
@Suite("W^X after every stage")
struct WriteXorExecuteTests {
    @Test("representative modules and their removal")
    func representativeModules() async throws {
        let directory = try TemporaryDirectory(prefix: "wx")
        defer { directory.remove() }
        let modules = try await RepresentativeModule.build(in: directory) + [RepresentativeModule.buildLua(in: directory)]

        try await withModuleArea {
            let host = ModuleHost(options: .quiet)
            defer { host.removeAll() }
            for fixture in modules {
                let checksBefore = WriteXorExecuteChecker.checks
                let module = try host.load(files: fixture.files)
                #expect(try fixture.probe(module) == fixture.expected, "\(fixture)")
                try host.remove(module.name)

                let checksAfter = WriteXorExecuteChecker.checks
                for stage in LoaderStage.allCases {
                    #expect(checksAfter[stage, default: 0] > checksBefore[stage, default: 0],
                            "no W^X check ran after stage '\(stage.rawValue)' of the \(fixture)")
                }
                let violations = WriteXorExecuteChecker.violations.filter { $0.module == fixture.name }
                #expect(violations.isEmpty, "\(violations)")
            }
        }
    }

    @Test("failed init leaves no writable code")
    func failedInit() async throws {
        let directory = try TemporaryDirectory(prefix: "wx")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <errno.h>
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            static int start(void) { return -ENODEV; }
            module_init(start);
            """, name: "wx_failing", in: directory)

        try await withModuleArea {
            let host = ModuleHost(options: LogCollector().hostOptions())
            defer { host.removeAll() }
            let error = try #require(throws: LoadError.self) { try host.load(files: [object]) }

            #expect(error.kind == .initFailed)
            #expect(try MemoryMaps.writableAndExecutable().isEmpty)
            #expect(WriteXorExecuteChecker.violations.filter { $0.module == "wx_failing" }.isEmpty)
        }
    }

    @Test("checker finds writable code lines")
    func checkerParsesMaps() throws {
        let directory = try TemporaryDirectory(prefix: "wx")
        defer { directory.remove() }
        let lines = [
            "7f0000000000-7f0000001000 r-xp 00000000 08:01 1234 /usr/lib/libc.so.6",
            "7f0000001000-7f0000002000 rwxp 00000000 00:00 0 ",
            "7f0000002000-7f0000003000 rw-p 00000000 00:00 0 [heap]",
            "7f0000003000-7f0000004000 -wxs 00000000 00:01 7 /memfd:code (deleted)",
        ]
        let path = try directory.write(lines.joined(separator: "\n") + "\n", to: "maps")

        #expect(WriteXorExecuteChecker.writableAndExecutableLines(path: path) == [lines[1], lines[3]])
        #expect(WriteXorExecuteChecker.writableAndExecutableLines(path: directory.file("missing")) == nil)
    }
}
