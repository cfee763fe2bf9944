import Foundation
import Testing
@testable import ModKit

@Suite("module index")
struct ModuleIndexTests {
    @Test("exports read from a module file")
    func moduleExports() async throws {
        let directory = try TemporaryDirectory(prefix: "index")
        defer { directory.remove() }
        let path = try await ObjectBuilder.compile("""
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            int plain_function(void) { return 1; }
            EXPORT_SYMBOL(plain_function);
            int gpl_function(void) { return 2; }
            EXPORT_SYMBOL_GPL(gpl_function);
            int spaced_variable = 3;
            EXPORT_SYMBOL_NS(spaced_variable, SPACE);
            int not_exported(void) { return 4; }
            extern int needed_elsewhere(void);
            __attribute__((weak)) extern int maybe_there(void);
            int use(void) { return needed_elsewhere() + (maybe_there ? maybe_there() : 0); }
            """, name: "exports", in: directory)
        let object = try ObjectFile(ObjectImage(contentsOf: path))

        #expect(object.hasModuleMetadata)
        #expect(try object.exportedSymbols() == [
            FileExport(name: "gpl_function", namespace: nil, gplOnly: true),
            FileExport(name: "plain_function", namespace: nil, gplOnly: false),
            FileExport(name: "spaced_variable", namespace: "SPACE", gplOnly: false),
        ])
        // gcc refers to the GOT by name for the weak reference; the linker provides it.
        #expect(object.undefinedSymbols.map(\.name) == ["_GLOBAL_OFFSET_TABLE_", "maybe_there", "needed_elsewhere"])
        #expect(object.undefinedSymbols.map(\.isWeak) == [false, true, false])
    }

    @Test("plain object exports its default-visibility globals")
    func plainObjectExports() async throws {
        let directory = try TemporaryDirectory(prefix: "index")
        defer { directory.remove() }
        let path = try await ObjectBuilder.compile("""
            int visible(void) { return 1; }
            __attribute__((visibility("hidden"))) int hidden(void) { return 2; }
            static int local(void) { return 3; }
            int counter;
            int call(void) { return local() + hidden(); }
            """, name: "plain", in: directory)
        let object = try ObjectFile(ObjectImage(contentsOf: path))

        #expect(!object.hasModuleMetadata)
        #expect(try object.exportedSymbols().map(\.name) == ["call", "counter", "visible"])
        #expect(object.undefinedSymbols.isEmpty)
    }

    @Test("dependencies listed before what they need")
    func dependencyOrder() async throws {
        let directory = try TemporaryDirectory(prefix: "index")
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.file("sub"), withIntermediateDirectories: false)
        _ = try await ObjectBuilder.compile("int base_value(void) { return 1; }", name: "base", in: directory)
        _ = try await ObjectBuilder.compile("int base_value(void); int middle_value(void) { return base_value() + 1; }",
                                            name: "middle", in: directory)
        _ = try await ObjectBuilder.compile(file: try directory.write("int middle_value(void); int top(void) { return middle_value(); }", to: "top.c"),
                                            output: directory.file("sub/top-level.o"))

        let index = try ModuleIndex(scanning: directory.path)
        #expect(index.modulesDep == "base.o:\nmiddle.o: base.o\nsub/top-level.o: middle.o base.o\n")
        #expect(index.modules.map(\.name) == ["base", "middle", "top_level"])
        #expect(index.warnings.isEmpty)

        let database = try { () throws -> ModuleDatabase in
            try index.write()
            return try ModuleDatabase(directory: directory.path)
        }()
        #expect(database.paths["top_level"] == "sub/top-level.o")
        #expect(database.dependencies["top_level"] == ["middle.o", "base.o"])
        #expect(database.modules(matchingAlias: "symbol:base_value") == ["base"])
    }

    @Test("dependency cycle is an error")
    func dependencyCycle() async throws {
        let directory = try TemporaryDirectory(prefix: "index")
        defer { directory.remove() }
        _ = try await ObjectBuilder.compile("int pong(void); int ping(void) { return pong(); }", name: "ping", in: directory)
        _ = try await ObjectBuilder.compile("int ping(void); int pong(void) { return ping(); }", name: "pong", in: directory)

        #expect(throws: ModuleDirectoryError.self) { try ModuleIndex(scanning: directory.path) }
        do {
            _ = try ModuleIndex(scanning: directory.path)
        } catch {
            #expect(error.message == "dependency cycle: ping.o -> pong.o -> ping.o; no load order exists")
        }
    }

    @Test("missing modules.dep names depmod")
    func missingIndex() throws {
        do {
            _ = try ModuleDatabase(directory: "/nonexistent")
            Issue.record("reading succeeded")
        } catch {
            #expect(error.message == "/nonexistent/modules.dep not found or unreadable; run 'modkit depmod /nonexistent' first")
        }
    }

    @Test("modprobe.d commands")
    func configurationCommands() {
        var configuration = ModprobeConfiguration()
        configuration.parse("""
            # comment
            alias net-pf-* my-net
            options my-net debug=1
            options my_net mode=fast \\
              level=2
            blacklist bad-module
            softdep my-net pre: first second post: third
            remove my-net /bin/false
            frobnicate now
            alias lonely

            """, file: "test.conf")

        #expect(configuration.modules(matchingAlias: "net_pf_10") == ["my_net"])
        #expect(configuration.modules(matchingAlias: "other").isEmpty)
        #expect(configuration.options["my_net"] == ["debug=1", "mode=fast", "level=2"])
        #expect(configuration.blacklist == ["bad_module"])
        #expect(configuration.softDependencies["my_net"]?.pre == ["first", "second"])
        #expect(configuration.softDependencies["my_net"]?.post == ["third"])
        #expect(configuration.warnings == [
            "test.conf:8: 'remove' runs a shell command, which modkit does not support; line ignored",
            "test.conf:9: unknown command 'frobnicate'; line ignored",
            "test.conf:10: 'alias' needs a pattern and a module name",
        ])
    }
}
