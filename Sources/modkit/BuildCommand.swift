import Glibc
import ModKit

/// `modkit build`: compiles a module's sources with the module flags, adds its symbol version
/// tables and links it into one object, as Linux's kbuild and modpost do.
struct BuildCommand: Command {
    static let name = "build"
    static let summary = "compile and link a module with symbol versions"
    static let usage = "modkit build [-o OUT] [--symvers FILE]... SOURCE... [-- CFLAGS...]\n       modkit build --host-symvers [--swift] [-o OUT]"
    static let discussion = """
        Compiles each SOURCE (.c with $CC or cc; .cc, .cpp, .cxx, .C with $CXX or c++; .S
        with $CC) with the flags of 'modkit cflags' and the CFLAGS after '--'. For every
        EXPORT_SYMBOL it computes a version CRC from the symbol's type and the types that type
        reaches, reading them from a second compilation with -g. It then generates NAME.mod.c
        with the CRCs of the module's exports and of its imports, and links all objects into
        OUT with '$LD -r' (ld by default). OUT defaults to the first source's name with .o,
        in the working directory.

        The CRCs of imported symbols come from the host API's table and from each
        Module.symvers given with --symvers, the first record of a symbol winning. The
        module's exports are written to Module.symvers in OUT's directory, replacing the
        module's earlier records there and keeping other modules'. Another module built with
        --symvers DIR/Module.symvers records these CRCs, and the loader rejects it when they
        no longer match the loaded exporter's.

        With --host-symvers, prints the host API's records in Module.symvers format,
        computed from the headers (with --swift, as the Swift table
        Sources/ModKit/HostAPI/HostSymbolVersions.swift), to standard output or to OUT.
        scripts/update-host-symvers.sh uses it to refresh the checked-in tables.

        Exit status: 0 when the module was built, 1 when a source is missing, compilation
        or linking failed, or a Module.symvers file is invalid, 2 for an invalid command line.
        """
    static let options = [
        OptionDefinition(long: "output", short: "o", valueName: "OUT", help: "write the module to OUT"),
        OptionDefinition(long: "symvers", valueName: "FILE", help: "read the CRCs of other modules' exports from FILE (repeatable)"),
        OptionDefinition(long: "host-symvers", help: "print the host API's Module.symvers records and build nothing"),
        OptionDefinition(long: "swift", help: "with --host-symvers, print them as the Swift table instead"),
    ]

    let sources: [String]
    let output: String?
    let symversFiles: [String]
    let compilerFlags: [String]
    let printsHostVersions: Bool
    let printsSwift: Bool

    init(arguments: ParsedArguments) throws(UsageError) {
        sources = arguments.positionals
        compilerFlags = arguments.passthrough
        output = arguments.value("output")
        symversFiles = arguments.values("symvers")
        printsHostVersions = arguments.contains("host-symvers")
        printsSwift = arguments.contains("swift")
        if printsHostVersions {
            if let first = sources.first ?? compilerFlags.first { throw UsageError("--host-symvers takes no sources, but '\(first)' was given") }
            if !symversFiles.isEmpty { throw UsageError("--host-symvers does not read --symvers files") }
        } else {
            guard !sources.isEmpty else { throw UsageError("missing source file") }
            if printsSwift { throw UsageError("--swift applies only with --host-symvers") }
        }
    }

    func run() -> Int32 {
        let moduleFlags: [String]
        switch HeaderDirectory.locate() {
        case .success(let directory): moduleFlags = ["-I\(directory)"] + CFlagsCommand.codeGenerationFlags
        case .failure(let error):
            Self.reportError(error.message)
            return ExitStatus.failure
        }
        do throws(BuildError) {
            if printsHostVersions {
                try printHostVersions(moduleFlags: moduleFlags)
            } else {
                var builder = ModuleBuilder(sources: sources, moduleFlags: moduleFlags)
                builder.output = output
                builder.symversFiles = symversFiles
                builder.extraFlags = compilerFlags
                let result = try builder.build()
                report(result)
            }
            return ExitStatus.success
        } catch {
            Self.reportError(error.description)
            return ExitStatus.failure
        }
    }

    private func printHostVersions(moduleFlags: [String]) throws(BuildError) {
        let file = try HostSymbolProbe.compute(moduleFlags: moduleFlags)
        let text = printsSwift ? HostSymbolProbe.swiftSource(file) : file.text
        guard let output else {
            print(text, terminator: "")
            return
        }
        guard let stream = fopen(output, "w") else {
            throw BuildError("cannot write \(output): \(String(cString: strerror(errno)))")
        }
        fputs(text, stream)
        guard fclose(stream) == 0 else { throw BuildError("cannot write \(output): \(String(cString: strerror(errno)))") }
    }

    /// Warns, as modpost does, about each import that no Module.symvers describes and the C
    /// library does not define, so that a forgotten --symvers shows before the module fails
    /// to load or loads tainted.
    private func report(_ result: ModuleBuilder.Result) {
        for symbol in result.unversionedImports {
            writeToStandardError("modkit build: warning: \(result.moduleName): no symbol version for \(symbol): no Module.symvers given with --symvers exports it\n")
        }
    }
}
