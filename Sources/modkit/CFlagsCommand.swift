import Glibc

/// `modkit cflags`: prints the compiler flags that build a module, for
/// `cc $(modkit cflags) -c mod.c -o mod.o`.
struct CFlagsCommand: Command {
    static let name = "cflags"
    static let summary = "print the compiler flags that build a module"
    static let usage = "modkit cflags"
    static let discussion = """
        Prints the flags a C or C++ module needs, on one line:

          -I DIR   the directory that contains modkit/module.h
          -fPIC    position-independent code, so the module can reach the process's libraries
                   from wherever ModKit maps it
          -fno-omit-frame-pointer
                   frame pointers, so that crash reports can list the module's frames

        The header directory is, in order: $MODKIT_INCLUDE if set; <prefix>/include when
        modkit is installed as <prefix>/bin/modkit; the source tree modkit was built from.
        Use it as: cc $(modkit cflags) -c mod.c -o mod.o. The output is not quoted for the
        shell, so the directory must not contain spaces.
        """
    static let options: [OptionDefinition] = []

    /// Code-generation flags every module needs.
    ///
    /// `-fPIC`: ModKit maps a module wherever the address space has room, and the process's
    /// libraries may lie more than 2 GiB away. Position-dependent code reaches them with
    /// 32-bit offsets or addresses that cannot span that distance, so ModKit rejects such a
    /// module with an error that names `-fPIC` as the fix. PIC code goes through the GOT and
    /// PLT entries that ModKit builds instead.
    ///
    /// `-fno-omit-frame-pointer`: crash reports walk the frame-pointer chain, because an
    /// unwinder is not safe to run in a signal handler, so a module's frames appear in a
    /// backtrace only when its functions keep frame pointers.
    static let codeGenerationFlags = ["-fPIC", "-fno-omit-frame-pointer"]

    init(arguments: ParsedArguments) throws(UsageError) {
        try Self.rejectOperands(arguments)
    }

    func run() -> Int32 {
        switch HeaderDirectory.locate() {
        case .success(let directory):
            print((["-I\(directory)"] + Self.codeGenerationFlags).joined(separator: " "))
            return ExitStatus.success
        case .failure(let error):
            Self.reportError(error.message)
            return ExitStatus.failure
        }
    }
}

/// Finds the directory that contains `modkit/module.h`.
enum HeaderDirectory {
    struct NotFound: Error {
        var message: String
    }

    /// The header's path relative to the include directory.
    static let header = "modkit/module.h"

    /// This file's location when modkit was built, for a build run from the source tree.
    static let sourceFile = #filePath

    static func locate() -> Result<String, NotFound> {
        if let override = getenv("MODKIT_INCLUDE").map({ String(cString: $0) }), !override.isEmpty {
            guard containsHeader(override) else {
                return .failure(NotFound(message: "MODKIT_INCLUDE is '\(override)', but \(override)/\(header) does not exist; set it to the directory that contains modkit/module.h"))
            }
            return .success(override)
        }

        var searched: [String] = []
        if let executable = executablePath() {
            // <prefix>/bin/modkit -> <prefix>/include
            let installed = parent(of: parent(of: executable)) + "/include"
            if containsHeader(installed) { return .success(installed) }
            searched.append(installed)
        }
        // Sources/modkit/CFlagsCommand.swift -> Sources/CModKit/include
        let sourceTree = parent(of: parent(of: sourceFile)) + "/CModKit/include"
        if containsHeader(sourceTree) { return .success(sourceTree) }
        searched.append(sourceTree)

        return .failure(NotFound(message: "\(header) not found in \(searched.joined(separator: " or ")); set MODKIT_INCLUDE to the directory that contains it"))
    }

    private static func containsHeader(_ directory: String) -> Bool {
        access(directory + "/" + header, R_OK) == 0
    }

    /// Returns the running executable's path, with symbolic links resolved.
    private static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Returns the path without its last component: `/a/b` for `/a/b/c`, `/` for `/a`.
    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
