import Foundation
import Testing

/// End-to-end tests of `modkit bench refcount`, with loops short enough for a test run.
@Suite("modkit bench refcount")
struct BenchRefcountTests {
    @Test("short run prints every figure")
    func shortRun() async throws {
        let result = try await ModkitTool.run(["bench", "refcount", "--iterations", "1000", "--runs", "1", "--removals", "3"])
        let lines = result.standardOutput.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)

        #expect(result.status == 0, "\(result)")
        #expect(result.standardError == "", "\(result)")
        #expect(lines.first == "reference counting mode: membarrier" || lines.first == "reference counting mode: fence", "\(result)")
        // The compiler is $CC when set, else cc.
        #expect(lines.dropFirst().first?.hasPrefix("C module compiled with: ") == true, "\(result)")
        #expect(lines.dropFirst().first?.contains(" -O2 -fPIC (") == true, "\(result)")
        #expect(lines.dropFirst().first?.hasSuffix(")") == true, "\(result)")
        for label in ["ModKit from C", "ModKit from Swift", "shared atomic counter", "floor", "  own thread's counter", "  current CPU's counter"] {
            let row = lines.first { $0.hasPrefix(label + " ") }
            #expect(row?.split(separator: " ", omittingEmptySubsequences: true).suffix(2).allSatisfy { Double($0) != nil } == true,
                    "no row with two figures for \(label)\n\(result)")
        }
        #expect(lines.filter { $0.hasPrefix("  met ") || $0.hasPrefix("  missed ") }.count == 5, "\(result)")
        #expect(lines.contains { $0.hasPrefix("whole removal of an idle module, median of 3: ") }, "\(result)")
    }

    @Test("unknown benchmark is a usage error")
    func unknownBenchmark() async throws {
        let result = try await ModkitTool.run(["bench", "relocation"])

        #expect(result.status == 2)
        #expect(result.standardOutput == "")
        #expect(result.standardError == """
            modkit bench: unknown benchmark 'relocation'; the benchmarks are kallsyms, refcount
            usage: modkit bench NAME [OPTIONS]

            """)
    }

    @Test("bench help lists benchmarks")
    func benchHelp() async throws {
        let result = try await ModkitTool.run(["bench", "--help"])

        #expect(result.status == 0)
        #expect(result.standardError == "")
        #expect(result.standardOutput.hasPrefix("usage: modkit bench NAME [OPTIONS]\n\nbenchmarks:\n  kallsyms  "), "\(result)")
        #expect(result.standardOutput.contains("\n  refcount  "), "\(result)")
        #expect(try await ModkitTool.run(["help", "bench"]).standardOutput == result.standardOutput)
    }

    @Test("zero iterations is a usage error")
    func zeroIterations() async throws {
        let result = try await ModkitTool.run(["bench", "refcount", "--iterations", "0"])

        #expect(result.status == 2)
        #expect(result.standardError.hasPrefix("modkit bench: invalid value '0' for --iterations; expected a positive integer\n"))
    }
}
