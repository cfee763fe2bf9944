import Testing

/// End-to-end tests of `modkit kallsyms`. Lookups that pass an address from one run to the
/// next run `modkit` under `setarch -R`, which turns off address space layout randomization
/// so that both runs map the executable and libc at the same addresses.
@Suite("modkit kallsyms")
struct KallsymsCommandTests {
    private func runFixed(_ arguments: [String]) async throws -> ProcessResult {
        try await runProcess("/usr/bin/env", ["setarch", "-R", try ModkitTool.executablePath()] + arguments)
    }

    /// The address at the start of a listing line, as a number.
    private func address(of line: String) -> UInt64? {
        line.split(separator: " ").first.flatMap { UInt64($0, radix: 16) }
    }

    @Test func executableSymbolLine() async throws {
        let result = try await ModkitTool.run(["kallsyms", "main"])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.hasSuffix(" T main\n"), "\(result)")
        #expect(result.standardOutput.count == 24, "\(result)")
        #expect(result.standardError == "", "\(result)")
    }

    @Test func librarySymbolLine() async throws {
        let result = try await ModkitTool.run(["kallsyms", "libc.so.6:malloc"])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.hasSuffix(" T malloc\t[libc.so.6]\n"), "\(result)")
    }

    @Test func addressOfLibrarySymbol() async throws {
        let found = try await runFixed(["kallsyms", "malloc"])
        let malloc = try #require(address(of: found.standardOutput), "\(found)")

        let result = try await runFixed(["kallsyms", "0x" + String(malloc + 4, radix: 16)])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.hasPrefix("malloc+0x4/0x"), "\(result)")
        #expect(result.standardOutput.hasSuffix(" [libc.so.6]\n"), "\(result)")
    }

    @Test func addressOfExecutableSymbol() async throws {
        let found = try await runFixed(["kallsyms", "main"])
        let main = try #require(address(of: found.standardOutput), "\(found)")

        let result = try await runFixed(["kallsyms", "0x" + String(main + 2, radix: 16)])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.hasPrefix("main+0x2/0x"), "\(result)")
        #expect(!result.standardOutput.contains("["), "\(result)")
    }

    @Test func listingFormat() async throws {
        let result = try await ModkitTool.run(["kallsyms"])
        let lines = result.standardOutput.split(separator: "\n")

        #expect(result.status == 0)
        #expect(lines.contains { $0.hasSuffix(" T main") })
        #expect(lines.contains { $0.hasSuffix(" T malloc\t[libc.so.6]") })
        #expect(lines.contains { $0.contains(" $s6modkit") })
        #expect(lines.allSatisfy { $0.count > 19 && $0.dropFirst(16).hasPrefix(" ") && $0.dropFirst(18).hasPrefix(" ") })
    }

    @Test func moduleOptionFiltersListing() async throws {
        let result = try await ModkitTool.run(["kallsyms", "--module", "libc.so.6"])
        let lines = result.standardOutput.split(separator: "\n")

        #expect(result.status == 0)
        #expect(!lines.isEmpty)
        #expect(lines.allSatisfy { $0.hasSuffix("\t[libc.so.6]") })
    }

    @Test func unknownSymbolFails() async throws {
        let result = try await ModkitTool.run(["kallsyms", "no_such_symbol_anywhere"])

        #expect(result.status == 1)
        #expect(result.standardOutput == "")
        #expect(result.standardError == "modkit kallsyms: error: symbol 'no_such_symbol_anywhere' not found\n")
    }

    @Test func unknownAddressFails() async throws {
        let result = try await ModkitTool.run(["kallsyms", "0x10"])

        #expect(result.status == 1)
        #expect(result.standardError == "modkit kallsyms: error: no symbol contains address 0x10\n")
    }

    @Test func invalidAddressIsUsageError() async throws {
        let result = try await ModkitTool.run(["kallsyms", "0xzz"])

        #expect(result.status == 2)
        #expect(result.standardError == """
            modkit kallsyms: invalid address '0xzz'; expected a hex number such as 0x401000
            usage: modkit kallsyms [--module NAME] [ADDRESS|SYMBOL]
            Run 'modkit kallsyms --help' for more information.

            """)
    }
}
