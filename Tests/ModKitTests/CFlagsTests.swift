import Foundation
import Testing

/// `modkit cflags` output builds modules that `modkit exec` runs, with both compilers and both
/// languages.
@Suite("modkit cflags")
struct CFlagsTests {
    static let moduleSource = """
        #include <stdio.h>
        #include <modkit/module.h>

        MODULE_LICENSE("GPL");
        MODULE_DESCRIPTION("built with modkit cflags");

        static int counter;
        static int setup(void) { counter = 1; return 0; }
        static void teardown(void) {}
        module_init(setup);
        module_exit(teardown);

        int main(void) {
            printf("counter %d, live %d\\n", counter, THIS_MODULE->live);
            return 0;
        }
        """

    @Test("flags name the header directory, -fPIC and frame pointers")
    func output() async throws {
        let result = try await ModkitTool.run(["cflags"])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput == "-I\(PackagePaths.includeDirectory) -fPIC -fno-omit-frame-pointer\n", "\(result)")
        #expect(result.standardError == "", "\(result)")
    }

    @Test("MODKIT_INCLUDE without the header is an error")
    func invalidOverride() async throws {
        let directory = try TemporaryDirectory(prefix: "cflags")
        defer { directory.remove() }
        var environment = ProcessInfo.processInfo.environment
        environment["MODKIT_INCLUDE"] = directory.path

        let result = try await runProcess(ModkitTool.executablePath(), ["cflags"], environment: environment)

        #expect(result.status == 1, "\(result)")
        #expect(result.standardOutput == "", "\(result)")
        #expect(result.standardError.hasPrefix("modkit cflags: error: MODKIT_INCLUDE is '\(directory.path)'"), "\(result)")
    }

    @Test("module builds and runs", arguments: CCompiler.allCases, [SourceLanguage.c, .cPlusPlus])
    func moduleBuildsAndRuns(compiler: CCompiler, language: SourceLanguage) async throws {
        let directory = try TemporaryDirectory(prefix: "cflags")
        defer { directory.remove() }
        let cflags = try await ModkitTool.run(["cflags"])
        try #require(cflags.status == 0, "\(cflags)")
        let standard = language == .c ? "-std=c11" : "-std=c++17"
        let flags = cflags.standardOutput.split(whereSeparator: \.isWhitespace).map(String.init) + [standard, "-Wall", "-Werror"]

        let object = try await ObjectBuilder.compile(Self.moduleSource, language: language, compiler: compiler,
                                                     flags: flags, in: directory)
        let result = try await ModkitTool.run(["exec", object])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput == "counter 1, live 1\n", "\(result)")
        #expect(result.standardError == "", "\(result)")
    }
}
