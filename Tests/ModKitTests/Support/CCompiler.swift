import Foundation
import Testing

/// A C compiler driver found on `PATH`.
enum CCompiler: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case gcc
    case clang

    var testDescription: String { rawValue }

    /// The C++ driver of the same compiler.
    var cPlusPlusDriver: String {
        switch self {
        case .gcc: "g++"
        case .clang: "clang++"
        }
    }
}

/// The language of a source snippet, passed to the driver with `-x`.
enum SourceLanguage: Sendable {
    case c
    case cPlusPlus
    /// Assembly that goes through the C preprocessor (`.S`).
    case assembly

    var driverName: String {
        switch self {
        case .c: "c"
        case .cPlusPlus: "c++"
        case .assembly: "assembler-with-cpp"
        }
    }

    var fileExtension: String {
        switch self {
        case .c: "c"
        case .cPlusPlus: "cpp"
        case .assembly: "S"
        }
    }
}

/// A compiler run that failed, with the command and everything the compiler printed.
struct CompileError: Error, CustomStringConvertible {
    var result: ProcessResult

    var description: String { "compilation failed\n\(result)" }
}

/// Builds ELF relocatable objects from snippets or files during a test run.
enum ObjectBuilder {
    /// The flags every test module gets unless a test passes its own: position-independent
    /// code and the directory of `modkit/module.h`.
    static let moduleFlags = ["-O2", "-fPIC", "-I\(PackagePaths.includeDirectory)"]

    /// Writes `source` to `NAME.c` (or `.cpp`, `.S`) in `directory`, compiles it with
    /// `compiler ... -c` and returns the path of `NAME.o`.
    ///
    /// Throws `CompileError` with the compiler's output if compilation fails, which fails the
    /// calling test.
    static func compile(_ source: String, language: SourceLanguage = .c, compiler: CCompiler = .gcc,
                        flags: [String] = moduleFlags, name: String = "module",
                        in directory: TemporaryDirectory) async throws -> String {
        let sourceFile = try directory.write(source, to: "\(name).\(language.fileExtension)")
        return try await compile(file: sourceFile, language: language, compiler: compiler, flags: flags,
                                 output: directory.file("\(name).o"))
    }

    /// Compiles the source file at `file` into the object `output` and returns `output`.
    static func compile(file: String, language: SourceLanguage = .c, compiler: CCompiler = .gcc,
                        flags: [String] = moduleFlags, output: String) async throws -> String {
        // Every object built here is loaded next, with the hooks in place.
        LoaderTestHooks.install()
        let driver = language == .cPlusPlus ? compiler.cPlusPlusDriver : compiler.rawValue
        let arguments = [driver] + flags + ["-x", language.driverName, "-c", file, "-o", output]
        let result = try await runProcess("/usr/bin/env", arguments, timeout: .seconds(900))
        guard result.status == 0 else { throw CompileError(result: result) }
        return output
    }
}
