import Foundation
import ModKit
import Testing

/// The inputs on which the fuzzer (scripts/fuzz.sh, docs/fuzzing.md) found a loader bug, replayed
/// through the fuzz target's own entry point. Each must now fail with a `LoadError` of the kind
/// its file name starts with (`KIND-what.o`), naming the file it was given, and must not crash.
@Suite("fuzz regressions")
struct FuzzRegressionTests {
    static let directory = PackagePaths.root + "/Tests/ModKitTests/Fixtures/fuzz"

    static let fixtures: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".o") }.sorted()
    }()

    /// Links `bytes` as the fuzz target does.
    static func link(_ bytes: Data, name: String) throws -> StaticLink {
        // A closure with typed throws here crashes the Swift 6.3 compiler in IRGen.
        try [UInt8](bytes).withUnsafeBytes { buffer in
            try StaticLinker.link(objectBytes: buffer, name: name, maximumImageSize: StaticLinker.fuzzingImageSize)
        }
    }

    @Test("the fixture directory holds crash inputs")
    func fixturesExist() {
        #expect(!Self.fixtures.isEmpty, "no .o files in \(Self.directory)")
    }

    @Test("a crash input fails with a LoadError", arguments: fixtures)
    func replay(_ name: String) throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.directory + "/" + name))
        let expectedKind = try #require(LoadError.Kind(rawValue: String(name.prefix { $0 != "-" })),
                                        "the file name must start with a LoadError.Kind and a dash")

        let error = try #require(throws: LoadError.self) {
            try Self.link(bytes, name: name)
        }

        #expect(error.kind == expectedKind, "\(error)")
        #expect(error.file == name || error.kind == .undefinedSymbols, "\(error)")
        #expect(!error.message.isEmpty)
    }

    /// The seeds that scripts/fuzz.sh compiles must link, or the fuzzer would start from inputs
    /// that never reach relocation.
    @Test("the x86_64 relocation seed links through the fuzz entry point")
    func x86_64SeedLinks() async throws {
        try await checkSeedLinks(.x86_64, compiler: "gcc")
    }

    @Test("the aarch64 relocation seed links through the fuzz entry point",
          .enabled(if: AArch64CrossToolchain.isAvailable, AArch64CrossToolchain.missing))
    func aarch64SeedLinks() async throws {
        try await checkSeedLinks(.aarch64, compiler: AArch64CrossToolchain.gcc)
    }

    private func checkSeedLinks(_ machine: Machine, compiler: String) async throws {
        let directory = try TemporaryDirectory(prefix: "fuzz-seed")
        defer { directory.remove() }
        let source = PackagePaths.root + "/scripts/fuzz-seeds/\(machine.rawValue)-relocations.s"
        let result = try await runProcess("/usr/bin/env", [compiler, "-c", source, "-o", directory.file("seed.o")], timeout: .seconds(120))
        try #require(result.status == 0, "\(result)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: directory.file("seed.o")))

        let link = try Self.link(bytes, name: "seed.o")

        #expect(link.map.target == machine)
        #expect(link.map.symbols["external_function"] != nil)
        #expect(link.image.count == link.map.size)
    }
}
