import Foundation
import Testing
@testable import ModKit

/// The compilers that build aarch64 objects on this x86_64 machine: the GCC cross compiler and
/// Clang with the cross sysroot, both from Debian's gcc-aarch64-linux-gnu and
/// libc6-dev-arm64-cross packages.
enum AArch64CrossToolchain {
    static let gcc = "aarch64-linux-gnu-gcc"
    static let sysroot = "/usr/aarch64-linux-gnu"

    static var isAvailable: Bool {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let hasCompiler = path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(gcc)") }
        return hasCompiler && FileManager.default.fileExists(atPath: sysroot + "/include/stdio.h")
    }

    static let missing: Comment = "aarch64 cross compiler not found: install the Debian packages gcc-aarch64-linux-gnu and libc6-dev-arm64-cross"
}

/// One way of compiling `onelua.c` for the oracle.
struct OracleLuaBuild: Sendable, CustomTestStringConvertible {
    var machine: Machine
    var compiler: CCompiler
    var flags: [String]

    var testDescription: String { "\(compiler.rawValue) \(flags.joined(separator: " "))" }

    /// The compiler command without the source and output.
    var command: [String] {
        switch (machine, compiler) {
        case (.x86_64, _): [compiler.rawValue]
        case (.aarch64, .gcc): [AArch64CrossToolchain.gcc]
        case (.aarch64, .clang): ["clang", "--target=aarch64-linux-gnu", "--sysroot=\(AArch64CrossToolchain.sysroot)"]
        }
    }

    /// -O0, -O2 and -O3, each with -fPIC (built by GCC) and -fno-pic (built by Clang), so both
    /// compilers and both code generation modes are covered at every level.
    static func builds(_ machine: Machine) -> [OracleLuaBuild] {
        ["-O0", "-O2", "-O3"].flatMap { level in
            [OracleLuaBuild(machine: machine, compiler: .gcc, flags: [level, "-fPIC"]),
             OracleLuaBuild(machine: machine, compiler: .clang, flags: [level, "-fno-pic"])]
        }
    }

    /// The large code model with -fPIC on x86_64: addresses relative to _GLOBAL_OFFSET_TABLE_
    /// (GOTOFF64, GOTPC64, PLTOFF64, GOT64).
    static let x86_64Large = OracleLuaBuild(machine: .x86_64, compiler: .gcc, flags: ["-O2", "-fPIC", "-mcmodel=large"])

    /// The large code model, which only aarch64 objects built without -fPIC use: absolute
    /// addresses in MOVZ/MOVK sequences (Clang) or literal pools (GCC).
    static let aarch64Large = [CCompiler.gcc, .clang].map {
        OracleLuaBuild(machine: .aarch64, compiler: $0, flags: ["-O2", "-fno-pic", "-mcmodel=large"])
    }
}

/// `scripts/oracle.sh` links objects with `modkit link` and with ld.lld at the same addresses
/// and compares every relocated field. aarch64 code cannot run on this machine, so this is
/// what shows that its relocations are right.
@Suite("oracle: modkit link against ld.lld", .timeLimit(.minutes(15)))
struct OracleTests {
    @Test("Lua x86_64 matches ld.lld", arguments: OracleLuaBuild.builds(.x86_64) + [OracleLuaBuild.x86_64Large])
    func luaX86_64(build: OracleLuaBuild) async throws {
        try await Self.checkLua(build)
    }

    @Test("Lua aarch64 matches ld.lld", .enabled(if: AArch64CrossToolchain.isAvailable, AArch64CrossToolchain.missing),
          arguments: OracleLuaBuild.builds(.aarch64) + OracleLuaBuild.aarch64Large)
    func luaAArch64(build: OracleLuaBuild) async throws {
        try await Self.checkLua(build)
    }

    @Test("Lua x86_64 objects as one module match ld.lld")
    func luaObjectsX86_64() async throws {
        try await Self.checkLuaObjects(.x86_64)
    }

    @Test("Lua aarch64 objects as one module match ld.lld", .enabled(if: AArch64CrossToolchain.isAvailable, AArch64CrossToolchain.missing))
    func luaObjectsAArch64() async throws {
        try await Self.checkLuaObjects(.aarch64)
    }

    @Test("aarch64 boundaries match ld.lld")
    func aarch64Boundaries() async throws {
        try await Self.checkBoundaries(aarch64BoundaryCases, flags: ["--target=aarch64-linux-gnu"])
    }

    @Test("x86_64 boundaries match ld.lld")
    func x86_64Boundaries() async throws {
        try await Self.checkBoundaries(x86_64BoundaryCases, flags: ["--target=x86_64-linux-gnu"])
    }

    @Test("difference is reported with its location")
    func differenceReported() async throws {
        let directory = try TemporaryDirectory(prefix: "oracle")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("    .text\n    .long target - .\n", language: .assembly, compiler: .clang,
                                                     flags: ["--target=x86_64-linux-gnu"], name: "fixture", in: directory)
        // ld.lld rejects a --defsym for _GLOBAL_OFFSET_TABLE_ and defines it elsewhere than
        // ModKit, so a reference to it is the one difference the oracle must show.
        let gotReference = try await ObjectBuilder.compile("    .text\n    .quad _GLOBAL_OFFSET_TABLE_\n", language: .assembly,
                                                           compiler: .clang, flags: ["--target=x86_64-linux-gnu"],
                                                           name: "got", in: directory)

        let good = try await Self.runOracle([object])
        let bad = try await Self.runOracle([gotReference])

        #expect(good.status == 0, "\(good)")
        #expect(good.standardOutput == "\(object): 1 relocations compared, 0 differ; no .eh_frame\n", "\(good)")
        #expect(bad.status == 1, "\(bad)")
        #expect(bad.standardOutput.hasPrefix("\(gotReference): 1 relocations compared, 1 differ; no .eh_frame\n  .text+0x0 R_X86_64_64 '_GLOBAL_OFFSET_TABLE_': modkit "), "\(bad)")
    }

    // MARK: Helpers

    /// Compiles `onelua.c` and expects the oracle to compare thousands of relocations and find
    /// no difference.
    private static func checkLua(_ build: OracleLuaBuild) async throws {
        let corpus = try PackagePaths.requireLuaCorpus()
        let result = try await ProcessorSlots.shared.withSlot {
            let directory = try TemporaryDirectory(prefix: "oracle-lua")
            defer { directory.remove() }
            let object = directory.file("onelua.o")
            let arguments = build.command + build.flags + ["-DMAKE_LUA", "-DLUA_USE_LINUX", "-c", corpus + "/onelua.c", "-o", object]
            let compile = try await runProcess("/usr/bin/env", arguments, timeout: .seconds(900))
            guard compile.status == 0 else { throw CompileError(result: compile) }
            return try await runOracle([object])
        }

        #expect(result.status == 0, "\(result)")
        let summary = try #require(Self.summary(result.standardOutput), "\(result)")
        #expect(summary.compared >= 3000, "\(result)")
        #expect(summary.differ == 0, "\(result)")
        #expect(summary.descriptions >= 100, "\(result)")
    }

    /// Compiles the 33 source files of the Lua interpreter one by one and expects the oracle,
    /// linking them as one module, to find no difference. This covers what single objects do
    /// not: references between objects and a GOT shared by all of them.
    private static func checkLuaObjects(_ machine: Machine) async throws {
        let corpus = try PackagePaths.requireLuaCorpus()
        let build = OracleLuaBuild(machine: machine, compiler: .gcc, flags: ["-O2", "-fPIC"])
        let sources = try FileManager.default.contentsOfDirectory(atPath: corpus)
            .filter { $0.hasPrefix("l") && $0.hasSuffix(".c") && !["ltests.c", "luac.c", "lua.c"].contains($0) }.sorted() + ["lua.c"]

        let result = try await ProcessorSlots.shared.withSlot {
            let directory = try TemporaryDirectory(prefix: "oracle-objects")
            defer { directory.remove() }
            var objects: [String] = []
            for source in sources {
                let object = directory.file(source.replacingOccurrences(of: ".c", with: ".o"))
                let arguments = build.command + build.flags + ["-DLUA_USE_LINUX", "-c", corpus + "/" + source, "-o", object]
                let compile = try await runProcess("/usr/bin/env", arguments, timeout: .seconds(900))
                guard compile.status == 0 else { throw CompileError(result: compile) }
                objects.append(object)
            }
            return try await runOracle(["--module"] + objects)
        }

        #expect(sources.count == 33)
        #expect(result.status == 0, "\(result)")
        let summary = try #require(Self.summary(result.standardOutput), "\(result)")
        #expect(summary.compared >= 3000, "\(result)")
        #expect(summary.differ == 0, "\(result)")
    }

    /// Assembles the cases, puts every symbol at its boundary and expects no difference.
    private static func checkBoundaries(_ cases: [LinkBoundaryCase], flags: [String]) async throws {
        let directory = try TemporaryDirectory(prefix: "oracle-boundaries")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile(BoundaryFixture.source(cases), language: .assembly, compiler: .clang,
                                                     flags: flags, name: "fixture", in: directory)
        let places = try BoundaryFixture.places(of: object)
        let mapPath = try directory.write(BoundaryFixture.map(cases, places: places).text, to: "fixture.map")
        let relocationCount = cases.filter { !$0.symbol.isEmpty }.count

        let result = try await runOracle(["--map", mapPath, object])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput == "\(object): \(relocationCount) relocations compared, 0 differ; no .eh_frame\n", "\(result)")
    }

    static func runOracle(_ arguments: [String]) async throws -> ProcessResult {
        var environment = ProcessInfo.processInfo.environment
        environment["MODKIT"] = try ModkitTool.executablePath()
        return try await runProcess(PackagePaths.root + "/scripts/oracle.sh", arguments, environment: environment,
                                    timeout: .seconds(300))
    }

    /// Parses the counts in the oracle's line `OBJECT: N relocations compared, M differ; .eh_frame: K FDEs match`.
    private static func summary(_ output: String) -> (compared: Int, differ: Int, descriptions: Int)? {
        let line = output.split(separator: "\n").first.map(String.init) ?? ""
        let words = line.split(separator: " ")
        guard let comparedIndex = words.firstIndex(of: "relocations"), comparedIndex > 0,
              let compared = Int(words[comparedIndex - 1]),
              let differIndex = words.firstIndex(where: { $0.hasPrefix("differ") }), differIndex > 0,
              let differ = Int(words[differIndex - 1]),
              let fdeIndex = words.firstIndex(of: "FDEs"), fdeIndex > 0,
              let descriptions = Int(words[fdeIndex - 1]) else { return nil }
        return (compared, differ, descriptions)
    }
}
