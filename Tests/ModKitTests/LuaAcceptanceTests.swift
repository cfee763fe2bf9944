import Foundation
import Testing

/// One way of compiling `onelua.c`.
struct LuaBuild: Sendable, CustomTestStringConvertible {
    var compiler: CCompiler
    var optimization: [String]

    /// Flags for the standalone interpreter, `main` included, on Linux.
    var flags: [String] { optimization + ["-DMAKE_LUA", "-DLUA_USE_LINUX"] }

    var testDescription: String { "\(compiler.rawValue) \(optimization.joined(separator: " "))" }

    static let pic: [LuaBuild] = CCompiler.allCases.flatMap { compiler in
        [["-O2"], ["-O0"], ["-O3"], ["-O2", "-ffunction-sections", "-fdata-sections"]].map {
            LuaBuild(compiler: compiler, optimization: $0 + ["-fPIC"])
        }
    }

    static let noPIC: [LuaBuild] = CCompiler.allCases.map { LuaBuild(compiler: $0, optimization: ["-O2", "-fno-pic"]) }
}

/// The Lua 5.4 interpreter, compiled from the corpus, runs the official test suite in-process
/// through `modkit exec`. Each case compiles `onelua.c` (seconds to tens of seconds) and runs
/// the suite, so the cases share a limited number of processor slots.
@Suite("Lua 5.4 test suite through modkit exec", .timeLimit(.minutes(20)))
struct LuaAcceptanceTests {
    @Test("all.lua prints final OK", arguments: LuaBuild.pic)
    func testSuitePasses(build: LuaBuild) async throws {
        let result = try await Self.runTestSuite(build)

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.contains("final OK !!!"), "\(result)")
    }

    @Test("-fno-pic build passes or is rejected naming -fPIC", arguments: LuaBuild.noPIC)
    func positionDependentBuild(build: LuaBuild) async throws {
        let result = try await Self.runTestSuite(build)

        if result.status == 0 {
            #expect(result.standardOutput.contains("final OK !!!"), "\(result)")
        } else {
            // Rejected at load time: nothing ran, and the message names the fix.
            #expect(result.status == 1, "\(result)")
            #expect(result.standardOutput == "", "\(result)")
            #expect(result.standardError.hasPrefix("modkit exec: error: "), "\(result)")
            #expect(result.standardError.contains("-fPIC"), "\(result)")
        }
    }

    /// Compiles `onelua.c` with `build` and runs `modkit exec onelua.o -- -e "_U=true" all.lua`
    /// in a writable copy of `testes/`.
    private static func runTestSuite(_ build: LuaBuild) async throws -> ProcessResult {
        let corpus = try PackagePaths.requireLuaCorpus()
        return try await ProcessorSlots.shared.withSlot {
            let directory = try TemporaryDirectory(prefix: "lua")
            defer { directory.remove() }
            let object = try await ObjectBuilder.compile(file: corpus + "/onelua.c", compiler: build.compiler,
                                                         flags: build.flags, output: directory.file("onelua.o"))
            let testes = try PackagePaths.writableLuaTestSuite(in: directory)
            return try await ModkitTool.run(["exec", object, "--", "-e", "_U=true", "all.lua"],
                                            currentDirectory: testes, timeout: .seconds(600))
        }
    }
}
