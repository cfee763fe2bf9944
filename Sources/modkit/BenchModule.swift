import Glibc
import ModKit

/// The C module that `modkit bench refcount` loads, compiled at run time.
///
/// The source is part of the command so that the benchmark needs nothing but a C compiler:
/// `$CC`, or `cc` on `PATH`, with the header directory that `modkit cflags` prints.
enum BenchModule {
    static let name = "bench_refcount"

    static let source = """
        #define _GNU_SOURCE
        #include <modkit/module.h>
        #include <sched.h>

        MODULE_LICENSE("GPL");
        MODULE_DESCRIPTION("Loops that modkit bench refcount times");

        /* Takes and drops a reference on this module `iterations` times. Returns the number of
         * gets that succeeded, so that the compiler keeps the loop. */
        unsigned long bench_get_put(unsigned long iterations)
        {
            unsigned long got = 0;

            for (unsigned long i = 0; i < iterations; i++) {
                if (try_module_get(THIS_MODULE)) {
                    got++;
                    module_put(THIS_MODULE);
                }
            }
            return got;
        }

        /* The floor of a get and put: a plain increment and decrement of the caller's own
         * counter, with the load of live between them. The empty asm statements keep the
         * compiler from merging or dropping the counter updates. */
        unsigned long bench_floor_thread_slot(unsigned long iterations, unsigned long *slot)
        {
            unsigned long live = 0;

            for (unsigned long i = 0; i < iterations; i++) {
                (*slot)++;
                __asm__ __volatile__("" ::: "memory");
                live += __atomic_load_n(&THIS_MODULE->live, __ATOMIC_ACQUIRE) != 0;
                (*slot)--;
                __asm__ __volatile__("" ::: "memory");
            }
            return live;
        }

        /* The same with the current CPU's counter, one cache line per CPU. slots has room for
         * cpu_count CPUs. */
        unsigned long bench_floor_cpu_slot(unsigned long iterations, unsigned long *slots, unsigned long cpu_count)
        {
            unsigned long live = 0;

            for (unsigned long i = 0; i < iterations; i++) {
                unsigned long *slot = &slots[8 * ((unsigned long)sched_getcpu() % cpu_count)];

                (*slot)++;
                __asm__ __volatile__("" ::: "memory");
                live += __atomic_load_n(&THIS_MODULE->live, __ATOMIC_ACQUIRE) != 0;
                (*slot)--;
                __asm__ __volatile__("" ::: "memory");
            }
            return live;
        }

        static int __init bench_init(void)
        {
            return 0;
        }

        static void __exit bench_exit(void)
        {
        }

        module_init(bench_init);
        module_exit(bench_exit);
        """

    /// A compilation that failed, with the command and what the compiler printed.
    struct CompileError: Error, CustomStringConvertible {
        var description: String
    }

    /// The compiler: `$CC`, or `cc`.
    static var compiler: String {
        getenv("CC").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "cc"
    }

    /// Writes the source into `directory`, compiles it with `-O2 -fPIC` and returns the object's
    /// path.
    static func compile(in directory: String) throws(CompileError) -> String {
        let includeDirectory: String
        switch HeaderDirectory.locate() {
        case .success(let found): includeDirectory = found
        case .failure(let error): throw CompileError(description: error.message)
        }
        let sourcePath = directory + "/\(name).c"
        let objectPath = directory + "/\(name).o"
        let logPath = directory + "/compiler.log"
        guard let file = fopen(sourcePath, "w") else {
            throw CompileError(description: "cannot write \(sourcePath): \(String(cString: strerror(errno)))")
        }
        fputs(source, file)
        fclose(file)

        let arguments = [compiler, "-O2", "-fPIC", "-I\(includeDirectory)", "-c", sourcePath, "-o", objectPath]
        let status = run(arguments, log: logPath)
        guard status == 0 else {
            let log = readFile(logPath)
            throw CompileError(description: "'\(arguments.joined(separator: " "))' failed (\(status < 0 ? "cannot start it" : "exit status \(status)")); set CC to a C compiler\n\(log)")
        }
        return objectPath
    }

    /// Returns the first line that `compiler --version` prints, such as
    /// `cc (Debian 12.2.0-14) 12.2.0`, or nil when it prints nothing or fails.
    static func compilerVersion(in directory: String) -> String? {
        let logPath = directory + "/version.log"
        guard run([compiler, "--version"], log: logPath) == 0 else { return nil }
        let line = readFile(logPath).prefix { $0 != "\n" }
        return line.isEmpty ? nil : String(line)
    }

    /// Runs a program found on `PATH` with its output sent to `log`, and returns its exit status,
    /// or -1 if it cannot be started.
    private static func run(_ arguments: [String], log: String) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)

        let argv = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid = pid_t()
        guard posix_spawnp(&pid, argv[0]!, &actions, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED and WEXITSTATUS are macros that Swift does not import.
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    private static func readFile(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            guard count > 0 else { break }
            bytes += buffer[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
