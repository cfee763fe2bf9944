import Glibc

/// Runs the compiler and the linker for `modkit build`, with the tool's own standard output
/// and standard error, so its messages reach the user unchanged.
enum BuildProcess {
    /// Runs a program found on `PATH` and returns its exit status, 128 + N for a program killed
    /// by signal N, or nil when it cannot be started.
    static func run(_ arguments: [String]) -> Int32? {
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid = pid_t()
        guard posix_spawnp(&pid, argv[0]!, nil, nil, argv, environ) == 0 else { return nil }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED and WEXITSTATUS are macros that Swift does not import.
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Returns whether `compiler --version` names clang, which takes other debugging flags
    /// than gcc.
    static func isClang(_ compiler: String, in directory: BuildDirectory) -> Bool {
        let output = directory.file("compiler-version.txt")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0)
        let argv = [strdup(compiler), strdup("--version"), nil]
        defer { for argument in argv { free(argument) } }
        var pid = pid_t()
        guard posix_spawnp(&pid, argv[0]!, &actions, nil, argv, environ) == 0 else { return false }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (try? TextFile.read(output))?.contains("clang") ?? false
    }

    /// Runs `arguments` and throws a one-line error naming `what` when it fails.
    static func check(_ arguments: [String], what: String) throws(BuildError) {
        guard let status = run(arguments) else {
            throw BuildError("\(what) failed: cannot run '\(arguments[0])': \(String(cString: strerror(errno)))")
        }
        guard status == 0 else {
            throw BuildError("\(what) failed with exit status \(status): \(arguments.joined(separator: " "))")
        }
    }

    /// Returns the program named by the environment variable `variable`, else `fallback`.
    static func tool(_ variable: String, default fallback: String) -> String {
        guard let value = getenv(variable).map({ String(cString: $0) }), !value.isEmpty else { return fallback }
        return value
    }
}

/// A directory under `$TMPDIR` (or `/tmp`) that is removed with its files.
final class BuildDirectory {
    let path: String
    private var files: [String] = []

    init() throws(BuildError) {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((base + "/modkit-build.XXXXXX").utf8CString)
        guard let created = mkdtemp(&template) else {
            throw BuildError("cannot create a temporary directory in \(base): \(String(cString: strerror(errno))); set TMPDIR to a writable directory")
        }
        path = String(cString: created)
    }

    /// Returns the path of `name` inside the directory, to be removed with it.
    func file(_ name: String) -> String {
        files.append(path + "/" + name)
        return path + "/" + name
    }

    deinit {
        for file in files { unlink(file) }
        rmdir(path)
    }
}

/// Reads and writes whole text files for `modkit build`.
enum TextFile {
    static func read(_ path: String) throws(BuildError) -> String {
        guard let file = fopen(path, "r") else {
            throw BuildError("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            guard count > 0 else { break }
            bytes += buffer[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes through a temporary file and a rename, so a reader never sees half a file.
    static func write(_ text: String, to path: String) throws(BuildError) {
        let temporary = path + ".tmp"
        guard let file = fopen(temporary, "w") else {
            throw BuildError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        let bytes = Array(text.utf8)
        let written = fwrite(bytes, 1, bytes.count, file)
        let closed = fclose(file)
        guard written == bytes.count, closed == 0, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw BuildError("cannot write \(path): \(reason)")
        }
    }
}
