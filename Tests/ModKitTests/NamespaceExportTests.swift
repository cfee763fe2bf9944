import Foundation
import Testing
@testable import ModKit

private let exporter = """
    #include <modkit/module.h>
    int ns_twice(int x) { return 2 * x; }
    EXPORT_SYMBOL_NS(ns_twice, MATH_NS);
    int ns_gpl_triple(int x) { return 3 * x; }
    EXPORT_SYMBOL_NS_GPL(ns_gpl_triple, MATH_NS);
    int plain_four(void) { return 4; }
    EXPORT_SYMBOL(plain_four);
    MODULE_LICENSE("GPL");
    MODULE_NAME("mathns");
    """

private func importer(imports: String?, uses function: String = "ns_twice") -> String {
    """
    #include <modkit/module.h>
    int \(function)(int x);
    int use(void) { return \(function)(21); }
    MODULE_LICENSE("GPL");
    MODULE_NAME("importer");
    \(imports.map { "MODULE_IMPORT_NS(\($0));" } ?? "")
    """
}

@Suite("Export namespaces and duplicate exports")
struct NamespaceExportTests {
    @Test("missing import is rejected with the namespace")
    func missingImport() async throws {
        try await withModuleArea {
            let test = try ModuleTestHost()
            defer { test.finish() }
            _ = try await test.load(exporter, name: "mathns")
            let object = try await test.compile(importer(imports: nil), name: "importer")

            let error = #expect(throws: LoadError.self) { _ = try test.host.load(files: [object]) }
            #expect(error?.kind == .namespaceNotImported)
            #expect(error?.symbol == "ns_twice")
            #expect(error?.description == """
                \(object): module importer uses symbol ns_twice from namespace MATH_NS, but does not import it.
                >>> add MODULE_IMPORT_NS(MATH_NS); to the module's source
                """)
            #expect(test.host.module(named: "importer") == nil)
            #expect(test.host.module(named: "mathns")?.users == [])

            let other = try await test.compile(importer(imports: "OTHER_NS"), name: "other")
            let wrong = #expect(throws: LoadError.self) { _ = try test.host.load(files: [other]) }
            #expect(wrong?.kind == .namespaceNotImported)
        }
    }

    @Test("import lets a module bind namespaced exports", arguments: ["ns_twice", "ns_gpl_triple"])
    func importPresent(function: String) async throws {
        try await withModuleArea {
            let test = try ModuleTestHost()
            defer { test.finish() }
            _ = try await test.load(exporter, name: "mathns")
            let module = try await test.load(importer(imports: "MATH_NS", uses: function), name: "importer")
            #expect(module.dependencies == ["mathns"])
            #expect(module.info.values("import_ns") == ["MATH_NS"])
        }
    }

    @Test("symbols without a namespace need no import")
    func globalNamespace() async throws {
        try await withModuleArea {
            let test = try ModuleTestHost()
            defer { test.finish() }
            _ = try await test.load(exporter, name: "mathns")
            let module = try await test.load("""
                #include <modkit/module.h>
                int plain_four(void);
                int use(void) { return plain_four(); }
                MODULE_LICENSE("GPL");
                """, name: "plainuser")
            #expect(module.dependencies == ["mathns"])
            #expect(test.host.export(named: "ns_twice")?.namespace == "MATH_NS")
            #expect(test.host.export(named: "plain_four")?.namespace == nil)
        }
    }

    @Test("modinfo prints import_ns")
    func modinfoImport() async throws {
        let directory = try TemporaryDirectory(prefix: "namespace")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(importer(imports: "MATH_NS"), name: "importer", in: directory)
        let result = try await ModkitTool.run(["modinfo", "-F", "import_ns", object])
        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput == "MATH_NS\n", "\(result)")
    }

    @Test("daemon lists the namespace of each symbol")
    func daemonSymbols() async throws {
        let directory = try TemporaryDirectory(prefix: "namespace")
        defer { directory.remove() }
        _ = try await ObjectBuilder.compile(exporter, name: "mathns", in: directory)
        _ = try await ObjectBuilder.compile(importer(imports: nil), name: "importer", in: directory)
        let daemon = try await RunningDaemon(in: directory)
        #expect(try await daemon.run(["insmod", "mathns.o"]).status == 0)

        let client = try DaemonClient(path: daemon.socket, replyTimeout: .seconds(20))
        defer { client.close() }
        let symbols = try client.send(.symbols(module: "mathns")).fields.records(.symbol).map(SymbolRecord.init)
        #expect(symbols.map(\.name) == ["ns_gpl_triple", "ns_twice", "plain_four"])
        #expect(symbols.map(\.namespace) == ["MATH_NS", "MATH_NS", nil])
        #expect(symbols.map(\.gplOnly) == [true, false, false])

        let refused = try await daemon.run(["insmod", "importer.o"])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.standardError == """
            modkit insmod: ERROR: could not insert module importer.o: Invalid parameters
            importer.o: module importer uses symbol ns_twice from namespace MATH_NS, but does not import it.
            >>> add MODULE_IMPORT_NS(MATH_NS); to the module's source

            """, "\(refused)")
        try await daemon.stop()
    }

    @Test("duplicate export names both modules")
    func duplicateExport() async throws {
        try await withModuleArea {
            let test = try ModuleTestHost()
            defer { test.finish() }
            _ = try await test.load(exporter, name: "mathns")
            let object = try await test.compile("""
                #include <modkit/module.h>
                int plain_four(void) { return 44; }
                EXPORT_SYMBOL(plain_four);
                MODULE_LICENSE("GPL");
                """, name: "rival")

            let error = #expect(throws: LoadError.self) { _ = try test.host.load(files: [object]) }
            #expect(error?.kind == .duplicateSymbol)
            #expect(error?.description == "\(object): module rival exports duplicate symbol plain_four (owned by mathns); remove one of the two exports, or remove module mathns first")
            #expect(test.host.module(named: "rival") == nil)
            #expect(test.host.export(named: "plain_four")?.owner == "mathns")
        }
    }

    @Test("plain object duplicating an export names both modules")
    func duplicatePlainExport() async throws {
        try await withModuleArea {
            let test = try ModuleTestHost()
            defer { test.finish() }
            _ = try await test.load(exporter, name: "mathns")
            let object = try await test.compile("int ns_twice(int x) { return x + x; }", name: "plain")

            let error = #expect(throws: LoadError.self) { _ = try test.host.load(files: [object]) }
            #expect(error?.kind == .duplicateSymbol)
            #expect(error?.description == "\(object): module plain exports duplicate symbol ns_twice (owned by mathns); remove one of the two exports, or remove module mathns first")
            #expect(test.host.module(named: "plain") == nil)
        }
    }

    @Test("export of a host API name names the host")
    func hostSymbolExport() async throws {
        try await withModuleArea {
            let test = try ModuleTestHost()
            defer { test.finish() }
            let declared = try await test.compile("""
                #include <modkit/module.h>
                int atexit(void (*function)(void)) { (void)function; return 0; }
                EXPORT_SYMBOL(atexit);
                MODULE_LICENSE("GPL");
                """, name: "declared")
            let plain = try await test.compile("int printk(const char *format, ...) { (void)format; return 0; }", name: "plainhost")

            let error = #expect(throws: LoadError.self) { _ = try test.host.load(files: [declared]) }
            #expect(error?.kind == .duplicateSymbol)
            #expect(error?.description == "\(declared): module declared exports duplicate symbol atexit (owned by the host); rename the module's symbol, or give it hidden visibility or static linkage")
            let plainError = #expect(throws: LoadError.self) { _ = try test.host.load(files: [plain]) }
            #expect(plainError?.description == "\(plain): module plainhost exports duplicate symbol printk (owned by the host); rename the module's symbol, or give it hidden visibility or static linkage")
            #expect(test.host.modules.isEmpty)
        }
    }
}
