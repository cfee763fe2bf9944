import Foundation
import Testing
@testable import ModKit

private let library = """
    #include <modkit/module.h>
    MODULE_LICENSE("GPL");
    long lib_add(long a, long b) { return a + b; }
    EXPORT_SYMBOL(lib_add);
    long lib_multiply(long a, long b) { return a * b; }
    EXPORT_SYMBOL_GPL(lib_multiply);
    """

/// Runs `modkit build ARGUMENTS` in `directory`.
private func build(_ arguments: [String], in directory: TemporaryDirectory,
                   environment: [String: String]? = nil) async throws -> ProcessResult {
    var variables = ProcessInfo.processInfo.environment
    for (key, value) in environment ?? [:] { variables[key] = value }
    return try await runProcess(ModkitTool.executablePath(), ["build"] + arguments, currentDirectory: directory.path,
                                environment: variables)
}

@Suite("modkit build")
struct BuildCommandTests {
    @Test("writes Module.symvers and the CRC tables")
    func symversContent() async throws {
        let directory = try TemporaryDirectory(prefix: "build")
        defer { directory.remove() }
        _ = try directory.write(library, to: "lib.c")
        let result = try await build(["lib.c"], in: directory)
        #expect(result.status == 0, "\(result)")
        #expect(result.standardError == "")

        let module = try ObjectFile(ObjectImage(contentsOf: directory.file("lib.o")))
        let crcs = try #require(try VersionSection.read(VersionSection.exports, in: [module]))
        let add = try #require(crcs["lib_add"])
        #expect(crcs["lib_multiply"] == add, "both exports have the type long (long, long)")
        let symvers = try String(contentsOfFile: directory.file("Module.symvers"), encoding: .utf8)
        #expect(symvers == """
            \(VersionSection.hex(add))\tlib_add\tlib\tEXPORT_SYMBOL\t
            \(VersionSection.hex(add))\tlib_multiply\tlib\tEXPORT_SYMBOL_GPL\t

            """)
        let imports = try #require(try VersionSection.read(VersionSection.imports, in: [module]))
        #expect(imports.isEmpty)
        #expect(ModuleInfo(objects: [module]).values("vermagic").allSatisfy { $0 == "modkit-1 x86_64" })
    }

    @Test("records imported CRCs from symvers and the host API")
    func importsRecorded() async throws {
        let directory = try TemporaryDirectory(prefix: "build")
        defer { directory.remove() }
        _ = try directory.write(library, to: "lib.c")
        #expect(try await build(["lib.c"], in: directory).status == 0)
        let exported = try SymbolVersionFile(text: String(contentsOfFile: directory.file("Module.symvers"), encoding: .utf8), file: "Module.symvers")
        _ = try directory.write("""
            #include <modkit/module.h>
            #include <stdio.h>
            MODULE_LICENSE("GPL");
            long lib_add(long a, long b);
            static int user_init(void) { printf("%ld\\n", lib_add(1, 2)); pr_info("ready\\n"); return 0; }
            module_init(user_init);
            """, to: "user.c")
        let result = try await build(["-o", "out/user.o", "--symvers", "Module.symvers", "user.c"], in: directory)
        #expect(result.status == 1, "output directory does not exist yet")
        try FileManager.default.createDirectory(atPath: directory.file("out"), withIntermediateDirectories: false)
        let built = try await build(["-o", "out/user.o", "--symvers", "Module.symvers", "user.c"], in: directory)
        #expect(built.status == 0, "\(built)")

        let module = try ObjectFile(ObjectImage(contentsOf: directory.file("out/user.o")))
        let imports = try #require(try VersionSection.read(VersionSection.imports, in: [module]))
        #expect(imports == ["lib_add": exported.records.first { $0.symbol == "lib_add" }!.crc,
                            "_modkit_printk": HostSymbolVersions.crcs["_modkit_printk"]!])
        #expect(!FileManager.default.fileExists(atPath: directory.file("out/Module.symvers")), "a module without exports writes no symvers")
    }

    @Test("rebuild replaces a module's records and keeps others'")
    func symversMerged() async throws {
        let directory = try TemporaryDirectory(prefix: "build")
        defer { directory.remove() }
        _ = try directory.write(library, to: "lib.c")
        _ = try directory.write("#include <modkit/module.h>\nint other_value(void) { return 1; }\nEXPORT_SYMBOL(other_value);\n", to: "other.c")
        #expect(try await build(["lib.c"], in: directory).status == 0)
        #expect(try await build(["other.c"], in: directory).status == 0)
        _ = try directory.write(library.replacingOccurrences(of: "long lib_multiply(long a, long b)", with: "int lib_multiply(int a, int b)"),
                                to: "lib.c")
        #expect(try await build(["lib.c"], in: directory).status == 0)
        let file = try SymbolVersionFile(text: String(contentsOfFile: directory.file("Module.symvers"), encoding: .utf8), file: "Module.symvers")
        #expect(file.records.map(\.symbol) == ["lib_add", "lib_multiply", "other_value"])
        #expect(file.records.map(\.module) == ["lib", "lib", "other"])
        #expect(file.records[0].crc != file.records[1].crc)
    }

    @Test("namespace export is recorded")
    func namespaceExport() async throws {
        let directory = try TemporaryDirectory(prefix: "build")
        defer { directory.remove() }
        _ = try directory.write("#include <modkit/module.h>\nint ns_value(void) { return 3; }\nEXPORT_SYMBOL_NS_GPL(ns_value, MY_NS);\n", to: "ns.c")
        let result = try await build(["ns.c"], in: directory)
        #expect(result.status == 0, "\(result)")
        let file = try SymbolVersionFile(text: String(contentsOfFile: directory.file("Module.symvers"), encoding: .utf8), file: "Module.symvers")
        #expect(file.records.count == 1)
        #expect(file.records.first?.namespace == "MY_NS")
        #expect(file.records.first?.gplOnly == true)
        #expect(file.records.first?.module == "ns")
    }

    @Test("C and C++ sources link into one module")
    func mixedSources() async throws {
        let directory = try TemporaryDirectory(prefix: "build")
        defer { directory.remove() }
        _ = try directory.write(library, to: "lib.c")
        _ = try directory.write("""
            #include <modkit/module.h>
            extern "C" int twice(int value) { return 2 * value; }
            extern "C" { EXPORT_SYMBOL(twice); }
            """, to: "extra.cpp")
        let result = try await build(["-o", "both.o", "lib.c", "extra.cpp"], in: directory)
        #expect(result.status == 0, "\(result)")
        let symvers = try String(contentsOfFile: directory.file("Module.symvers"), encoding: .utf8)
        #expect(symvers.split(separator: "\n").map { $0.split(separator: "\t")[1] } == ["lib_add", "lib_multiply", "twice"])
        #expect(symvers.split(separator: "\n").allSatisfy { $0.split(separator: "\t")[2] == "both" })

        let test = try ModuleTestHost()
        defer { test.finish() }
        let module = try test.host.load(files: [directory.file("both.o")])
        #expect(module.taint == [])
        #expect(test.host.export(named: "twice")?.crc != nil)
    }

    @Test("g++ and clang++ agree on classes")
    func cPlusPlusClassesAgree() async throws {
        let directory = try TemporaryDirectory(prefix: "build")
        defer { directory.remove() }
        // <string> comes first because its code uses the name __init, which module.h defines.
        _ = try directory.write("""
            #include <string>
            #include <modkit/module.h>
            namespace geo {
            struct base { virtual ~base() {} int id; };
            struct shape : base { double w, h; enum class kind : unsigned char { a = 1, b = 200 } k; };
            }
            int measure(const geo::shape &s, int &out) { out = (int)(s.w * s.h); return out; }
            EXPORT_SYMBOL(measure);
            extern "C" long total(geo::shape *s, unsigned long n, std::string *name) { return (long)n + (long)s->w + (long)name->size(); }
            extern "C" { EXPORT_SYMBOL_GPL(total); }
            """, to: "shapes.cpp")
        var files: [SymbolVersionFile] = []
        for compiler in ["g++", "clang++"] {
            let result = try await build(["-o", "\(compiler).o", "shapes.cpp", "--", "-O2"], in: directory, environment: ["CXX": compiler])
            #expect(result.status == 0, "\(result)")
            files.append(try SymbolVersionFile(text: String(contentsOfFile: directory.file("Module.symvers"), encoding: .utf8), file: "Module.symvers"))
        }
        let gcc = files[1].records.filter { $0.module == "g++" }.map { [$0.symbol: $0.crc] }
        let clang = files[1].records.filter { $0.module == "clang++" }.map { [$0.symbol: $0.crc] }
        #expect(gcc.count == 2)
        #expect(gcc == clang)
    }

    @Test("missing source is named")
    func missingSource() async throws {
        let directory = try TemporaryDirectory(prefix: "build")
        defer { directory.remove() }
        let result = try await build(["nothing.c"], in: directory)
        #expect(result.status == 1)
        #expect(result.standardError == "modkit build: error: cannot read source file nothing.c: No such file or directory\n")
    }

    @Test("compiler errors pass through")
    func compilerError() async throws {
        let directory = try TemporaryDirectory(prefix: "build")
        defer { directory.remove() }
        _ = try directory.write("int broken(void) { return undeclared_name; }\n", to: "bad.c")
        let result = try await build(["bad.c"], in: directory, environment: ["CC": "gcc"])
        #expect(result.status == 1)
        #expect(result.standardError.contains("bad.c:1:27: error: ‘undeclared_name’ undeclared"), "\(result)")
        let last = result.standardError.split(separator: "\n").last ?? ""
        #expect(last.hasPrefix("modkit build: error: compiling bad.c failed with exit status 1: gcc -I"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: directory.file("bad.o")))
    }

    @Test("unknown compiler is named")
    func unknownCompiler() async throws {
        let directory = try TemporaryDirectory(prefix: "build")
        defer { directory.remove() }
        _ = try directory.write(library, to: "lib.c")
        let result = try await build(["lib.c"], in: directory, environment: ["CC": "no-such-compiler"])
        #expect(result.status == 1)
        #expect(result.standardError == "modkit build: error: compiling lib.c failed: cannot run 'no-such-compiler': No such file or directory\n")
    }

    @Test("unknown source kind is named")
    func unknownSourceKind() async throws {
        let directory = try TemporaryDirectory(prefix: "build")
        defer { directory.remove() }
        _ = try directory.write("text", to: "notes.txt")
        let result = try await build(["notes.txt"], in: directory)
        #expect(result.status == 1)
        #expect(result.standardError == "modkit build: error: notes.txt: unknown kind of source; expected .c, .cc, .cpp, .cxx, .C or .S\n")
    }

    @Test("invalid symvers file is named")
    func invalidSymversFile() async throws {
        let directory = try TemporaryDirectory(prefix: "build")
        defer { directory.remove() }
        _ = try directory.write(library, to: "lib.c")
        _ = try directory.write("0x1234 lib_add\n", to: "bad.symvers")
        let result = try await build(["--symvers", "bad.symvers", "lib.c"], in: directory)
        #expect(result.status == 1)
        #expect(result.standardError == "modkit build: error: bad.symvers:1: invalid Module.symvers line '0x1234 lib_add'; expected 0xCRC, symbol, module, EXPORT_SYMBOL or EXPORT_SYMBOL_GPL and a namespace, separated by tabs\n")
    }

    @Test("usage errors", arguments: [
        ([], "missing source file"),
        (["--swift", "a.c"], "--swift applies only with --host-symvers"),
        (["--host-symvers", "a.c"], "--host-symvers takes no sources, but 'a.c' was given"),
    ])
    func usageErrors(arguments: [String], message: String) async throws {
        let directory = try TemporaryDirectory(prefix: "build")
        defer { directory.remove() }
        let result = try await build(arguments, in: directory)
        #expect(result.status == 2)
        #expect(result.standardError.hasPrefix("modkit build: \(message)\nusage: modkit build"), "\(result)")
    }
}
