import Foundation
import ModKit
import Testing

/// End-to-end tests of `modkit exec`: each test compiles a small C module, runs the real
/// `modkit` executable on it and checks its whole output and exit status.
@Suite("modkit exec")
struct ExecTests {
    @Test("hello world prints to stdout")
    func helloWorld() async throws {
        let directory = try TemporaryDirectory(prefix: "exec")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <stdio.h>
            int main(void) { printf("hello, world\\n"); return 0; }
            """, in: directory)

        let result = try await ModkitTool.run(["exec", object])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput == "hello, world\n", "\(result)")
        #expect(result.standardError == "", "\(result)")
    }

    @Test("exit status of main is propagated")
    func exitStatus() async throws {
        let directory = try TemporaryDirectory(prefix: "exec")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("int main(void) { return 42; }", in: directory)

        let result = try await ModkitTool.run(["exec", object])

        #expect(result.status == 42, "\(result)")
        #expect(result.standardOutput == "", "\(result)")
        #expect(result.standardError == "", "\(result)")
    }

    @Test("argv and envp are passed to main")
    func argumentsPassed() async throws {
        let directory = try TemporaryDirectory(prefix: "exec")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <stdio.h>
            #include <string.h>
            int main(int argc, char **argv, char **envp) {
                int has_path = 0;
                for (char **variable = envp; *variable != NULL; variable++)
                    if (strncmp(*variable, "PATH=", 5) == 0) has_path = 1;
                printf("argc=%d\\n", argc);
                for (int i = 0; i <= argc; i++) printf("argv[%d]=[%s]\\n", i, argv[i] ? argv[i] : "NULL");
                printf("envp has PATH: %d\\n", has_path);
                return 0;
            }
            """, in: directory)

        let result = try await ModkitTool.run(["exec", object, "--", "-x", "two words", "", "--stats"])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput == """
            argc=5
            argv[0]=[\(object)]
            argv[1]=[-x]
            argv[2]=[two words]
            argv[3]=[]
            argv[4]=[--stats]
            argv[5]=[NULL]
            envp has PATH: 1

            """, "\(result)")
        #expect(result.standardError == "", "\(result)")
    }

    @Test("exit() in main flushes buffered stdout")
    func exitFlushesOutput() async throws {
        let directory = try TemporaryDirectory(prefix: "exec")
        defer { directory.remove() }
        // stdout is a file here, so stdio buffers it fully and only exit() can write it.
        let object = try await ObjectBuilder.compile("""
            #include <stdio.h>
            #include <stdlib.h>
            int main(void) { printf("buffered, no newline"); exit(3); }
            """, in: directory)

        let result = try await ModkitTool.run(["exec", object])

        #expect(result.status == 3, "\(result)")
        #expect(result.standardOutput == "buffered, no newline", "\(result)")
        #expect(result.standardError == "", "\(result)")
    }

    @Test("--repeat 3 reloads the module three times")
    func repeatRuns() async throws {
        let directory = try TemporaryDirectory(prefix: "exec")
        defer { directory.remove() }
        // The static counter starts at zero in each fresh load, and the file grows by one byte
        // per run, so the status of the last run is 3.
        let object = try await ObjectBuilder.compile("""
            #include <stdio.h>
            static int runs_in_this_load;
            int main(int argc, char **argv) {
                FILE *file = fopen(argv[1], "a+");
                long size;
                if (argc != 2 || file == NULL) return 100;
                fputc('x', file);
                size = ftell(file);
                fclose(file);
                printf("run %d, file size %ld\\n", ++runs_in_this_load, size);
                return (int)size;
            }
            """, in: directory)
        let counterFile = directory.file("counter")

        let result = try await ModkitTool.run(["exec", "--repeat", "3", object, "--", counterFile])

        #expect(result.status == 3, "\(result)")
        #expect(result.standardOutput == "run 1, file size 1\nrun 1, file size 2\nrun 1, file size 3\n", "\(result)")
        #expect(result.standardError == "", "\(result)")
    }

    @Test("--stats prints every stage and the cycle time")
    func statistics() async throws {
        let directory = try TemporaryDirectory(prefix: "exec")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <stdio.h>
            int main(void) { puts("ran"); return 0; }
            """, in: directory)

        let result = try await ModkitTool.run(["exec", "--stats", "-r", "2", object])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput == "ran\nran\n", "\(result)")
        let lines = result.standardError.split(separator: "\n").map(String.init)
        for stage in LoadStatistics.Stage.allCases {
            let stageLine = lines.first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(stage.rawValue + " ") }
            #expect(stageLine?.hasSuffix(" us") == true, "no line for stage '\(stage.rawValue)' in:\n\(result.standardError)")
        }
        let last = lines.last ?? ""
        #expect(last.wholeMatch(of: /[0-9]+\.[0-9] us per cycle/) != nil, "last line is '\(last)'")
    }

    @Test("missing object file is an error")
    func missingObject() async throws {
        let directory = try TemporaryDirectory(prefix: "exec")
        defer { directory.remove() }
        let missing = directory.file("absent.o")

        let result = try await ModkitTool.run(["exec", missing])

        #expect(result.status == 1, "\(result)")
        #expect(result.standardOutput == "", "\(result)")
        #expect(result.standardError.hasPrefix("modkit exec: error: \(missing)"), "\(result)")
    }

    @Test("undefined symbol is listed in the error")
    func undefinedSymbol() async throws {
        let directory = try TemporaryDirectory(prefix: "exec")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <stdio.h>
            int modkit_test_function_nobody_defines(int);
            int main(void) { puts("must not run"); return modkit_test_function_nobody_defines(1); }
            """, in: directory)

        let result = try await ModkitTool.run(["exec", object])

        #expect(result.status == 1, "\(result)")
        #expect(result.standardOutput == "", "\(result)")
        #expect(result.standardError.hasPrefix("modkit exec: error: "), "\(result)")
        #expect(result.standardError.contains("modkit_test_function_nobody_defines"), "\(result)")
    }

    @Test("module without main is an error")
    func missingMain() async throws {
        let directory = try TemporaryDirectory(prefix: "exec")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("int not_main(void) { return 0; }", in: directory)

        let result = try await ModkitTool.run(["exec", object])

        #expect(result.status == 1, "\(result)")
        #expect(result.standardOutput == "", "\(result)")
        #expect(result.standardError.hasPrefix("modkit exec: error: "), "\(result)")
        #expect(result.standardError.contains("'main'"), "\(result)")
    }

    @Test("module init and exit run around main")
    func initAndExit() async throws {
        let directory = try TemporaryDirectory(prefix: "exec")
        defer { directory.remove() }
        let object = try await ObjectBuilder.compile("""
            #include <stdio.h>
            #include <modkit/module.h>
            MODULE_LICENSE("GPL");
            static int setup(void) { puts("init"); return 0; }
            static void teardown(void) { puts("exit"); fflush(stdout); }
            module_init(setup);
            module_exit(teardown);
            int main(void) { puts("main"); return 0; }
            """, in: directory)

        let result = try await ModkitTool.run(["exec", object])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput == "init\nmain\nexit\n", "\(result)")
        #expect(result.standardError == "", "\(result)")
    }

    @Test("unknown option is a usage error")
    func unknownOption() async throws {
        let result = try await ModkitTool.run(["exec", "--foo", "module.o"])

        #expect(result.status == 2, "\(result)")
        #expect(result.standardOutput == "", "\(result)")
        #expect(result.standardError == """
            modkit exec: unknown option '--foo'
            usage: modkit exec [--repeat N] [--stats] OBJECT... [-- ARGS...]
            Run 'modkit exec --help' for more information.

            """, "\(result)")
    }

    @Test("invalid --repeat value is a usage error", arguments: ["0", "-1", "three", ""])
    func invalidRepeat(value: String) async throws {
        let result = try await ModkitTool.run(["exec", "--repeat", value, "module.o"])

        #expect(result.status == 2, "\(result)")
        #expect(result.standardError.hasPrefix("modkit exec: invalid value '\(value)' for --repeat"), "\(result)")
    }

    @Test("missing operands are a usage error")
    func missingOperands() async throws {
        let result = try await ModkitTool.run(["exec", "--stats"])

        #expect(result.status == 2, "\(result)")
        #expect(result.standardError.hasPrefix("modkit exec: missing object file\n"), "\(result)")
    }

    @Test("--help prints usage to stdout")
    func help() async throws {
        let result = try await ModkitTool.run(["exec", "--help"])

        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.hasPrefix("usage: modkit exec [--repeat N] [--stats] OBJECT... [-- ARGS...]\n"), "\(result)")
        #expect(result.standardOutput.contains("--repeat N"), "\(result)")
        #expect(result.standardError == "", "\(result)")
    }
}
