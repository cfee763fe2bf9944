import Foundation
import Testing
@testable import ModKit

/// Returns the exporter that most cases use. `add_points` reaches `struct point` through a
/// pointer, and nothing exported reaches `struct unrelated`.
private func exporter(point: String = "int x; int y;", unrelated: String = "long z;", body: String = "return a->x + b->y;",
                      parameterNames: (String, String) = ("a", "b")) -> String {
    let renamed = body.replacingOccurrences(of: "a->", with: parameterNames.0 + "->").replacingOccurrences(of: "b->", with: parameterNames.1 + "->")
    return """
    #include <modkit/module.h>
    struct point { \(point) };
    struct unrelated { \(unrelated) };
    struct unrelated keep_unrelated;
    int add_points(const struct point *\(parameterNames.0), struct point *\(parameterNames.1))
    {
        \(renamed)
    }
    EXPORT_SYMBOL(add_points);
    MODULE_LICENSE("GPL");
    """
}

/// Compiles `source` with debugging information and returns the CRC of each export.
private func crcs(_ source: String, language: SourceLanguage = .c, compiler: CCompiler = .gcc) async throws -> [String: UInt32] {
    let directory = try TemporaryDirectory(prefix: "symvers")
    defer { directory.remove() }
    let path = try await ObjectBuilder.compile(source, language: language, compiler: compiler,
                                               flags: ObjectBuilder.moduleFlags + ModuleBuilder.debugFlags, in: directory)
    let object = try ObjectFile(ObjectImage(contentsOf: path))
    let exports = try ExportVersions.declaredExports(in: object)
    return try ExportVersions.crcs(of: exports, debugObject: object, source: path)
}

@Suite("Symbol version CRCs")
struct SymbolVersionTests {
    @Test("field change reached through a pointer changes the CRC", arguments: CCompiler.allCases)
    func reachedFieldChanges(compiler: CCompiler) async throws {
        let original = try await crcs(exporter(), compiler: compiler)["add_points"]
        let widened = try await crcs(exporter(point: "int x; int y; int z;"), compiler: compiler)["add_points"]
        let retyped = try await crcs(exporter(point: "int x; long y;"), compiler: compiler)["add_points"]
        let renamed = try await crcs(exporter(point: "int x; int why;", body: "return a->x;"), compiler: compiler)["add_points"]
        #expect(original != nil)
        #expect(widened != original)
        #expect(retyped != original)
        let originalBody = try await crcs(exporter(body: "return a->x;"), compiler: compiler)["add_points"]
        #expect(renamed != originalBody)
    }

    @Test("unrelated changes keep the CRC", arguments: CCompiler.allCases)
    func unrelatedChangesKeepIt(compiler: CCompiler) async throws {
        let original = try await crcs(exporter(), compiler: compiler)["add_points"]
        let unrelated = try await crcs(exporter(unrelated: "char z[16]; double w;"), compiler: compiler)["add_points"]
        let body = try await crcs(exporter(body: "return a->y * 2 - b->x;"), compiler: compiler)["add_points"]
        let names = try await crcs(exporter(parameterNames: ("first", "second")), compiler: compiler)["add_points"]
        let reformatted = try await crcs("/* a comment */\n" + exporter().replacingOccurrences(of: " ", with: "  ")
            .replacingOccurrences(of: ";", with: " ;\n"), compiler: compiler)["add_points"]
        #expect(original != nil)
        #expect(unrelated == original)
        #expect(body == original)
        #expect(names == original)
        #expect(reformatted == original)
    }

    @Test("prototype change changes the CRC")
    func prototypeChanges() async throws {
        let source = """
            #include <modkit/module.h>
            long scale(long value, int factor) { return value * factor; }
            EXPORT_SYMBOL(scale);
            """
        let original = try await crcs(source)["scale"]
        let returnType = try await crcs(source.replacingOccurrences(of: "long scale", with: "int scale"))["scale"]
        let parameter = try await crcs(source.replacingOccurrences(of: "int factor", with: "short factor"))["scale"]
        let extra = try await crcs(source.replacingOccurrences(of: "int factor)", with: "int factor, int unused)"))["scale"]
        #expect(original != nil)
        #expect(returnType != original)
        #expect(parameter != original)
        #expect(extra != original)
    }

    @Test("gcc and clang agree")
    func compilersAgree() async throws {
        let source = exporter() + """

            enum color { RED = -1, GREEN = 7 };
            struct node { struct node *next; enum color color; unsigned flag : 3; char name[8]; union { int i; float f; } value; };
            typedef int (*visitor)(struct node *, void *);
            int walk(struct node *head, visitor visit, void *context, ...) { return visit(head, context); }
            EXPORT_SYMBOL_GPL(walk);
            const char *const names[3];
            EXPORT_SYMBOL(names);
            """
        let gcc = try await crcs(source, compiler: .gcc)
        let clang = try await crcs(source, compiler: .clang)
        #expect(gcc.count == 3)
        #expect(gcc == clang)
    }

    @Test("self-referencing struct is spelled once")
    func cycleHandled() async throws {
        let directory = try TemporaryDirectory(prefix: "symvers")
        defer { directory.remove() }
        let source = """
            #include <modkit/module.h>
            struct b;
            struct a { struct b *peer; struct a *self; };
            struct b { struct a *peer; };
            int link_a(struct a *node) { return node->self == node; }
            EXPORT_SYMBOL(link_a);
            """
        let path = try await ObjectBuilder.compile(source, flags: ObjectBuilder.moduleFlags + ModuleBuilder.debugFlags, in: directory)
        let text = try ExportVersions.signatureText(symbol: "link_a", debugObject: ObjectFile(ObjectImage(contentsOf: path)))
        #expect(text == """
            function(struct a *) -> s32
            struct a {size 16; struct b * peer at 0; struct a * self at 8}
            struct b {size 8; struct a * peer at 0}
            """)
    }

    @Test("C++ extern C export matches the C one", arguments: CCompiler.allCases)
    func cPlusPlusExport(compiler: CCompiler) async throws {
        let body = """
            struct point { int x; int y; };
            int sum_point(const struct point *p) { return p->x + p->y; }
            EXPORT_SYMBOL(sum_point);
            """
        let c = try await crcs("#include <modkit/module.h>\n" + body, compiler: compiler)
        let cPlusPlus = try await crcs("#include <modkit/module.h>\nextern \"C\" {\n" + body + "\n}", language: .cPlusPlus, compiler: compiler)
        #expect(c["sum_point"] != nil)
        #expect(cPlusPlus == c)
    }

    @Test("symvers lines round trip")
    func symversRoundTrip() throws {
        let text = "0x0000abcd\tadd\tmathlib\tEXPORT_SYMBOL\t\n0x12345678\tgpl_only\tmathlib\tEXPORT_SYMBOL_GPL\tMATH\n"
        let file = try SymbolVersionFile(text: text, file: "Module.symvers")
        #expect(file.records == [
            SymbolVersionRecord(crc: 0xabcd, symbol: "add", module: "mathlib", gplOnly: false),
            SymbolVersionRecord(crc: 0x1234_5678, symbol: "gpl_only", module: "mathlib", gplOnly: true, namespace: "MATH"),
        ])
        #expect(file.text == text)
    }

    @Test("invalid symvers line is named")
    func invalidSymvers() {
        #expect {
            try SymbolVersionFile(text: "0x0000abcd\tadd\tmathlib\tEXPORT_SYMBOL\t\n0xabc add mathlib\n", file: "old.symvers")
        } throws: { error in
            (error as? BuildError)?.description == "old.symvers:2: invalid Module.symvers line '0xabc add mathlib'; expected 0xCRC, symbol, module, EXPORT_SYMBOL or EXPORT_SYMBOL_GPL and a namespace, separated by tabs"
        }
    }

    @Test("host API table is current")
    func hostTableCurrent() async throws {
        let result = try await ModkitTool.run(["build", "--host-symvers"])
        #expect(result.status == 0, "\(result)")
        let checkedIn = try String(contentsOfFile: PackagePaths.includeDirectory + "/modkit/Module.symvers", encoding: .utf8)
        let stale = "the host API's symbol versions are stale; run scripts/update-host-symvers.sh and commit the result"
        #expect(result.standardOutput == checkedIn, "\(stale)")
        #expect(try HostSymbolVersions.file().text == result.standardOutput, "\(stale)")
        #expect(HostSymbolVersions.crcs["printk"] != nil)
    }
}
