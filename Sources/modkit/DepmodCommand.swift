import ModKit

/// `modkit depmod`: writes the dependency index of a module directory.
struct DepmodCommand: Command {
    static let name = "depmod"
    static let summary = "write modules.dep, modules.symbols and modules.alias for a directory"
    static let usage = "modkit depmod [-n] [DIR]"
    static let discussion = """
        Reads every .o file under DIR (default: $MODKIT_MODULE_PATH, else the running
        daemon's --module-dir) and writes, in kmod's text formats:

          modules.dep      path.o: dependency.o ...   every module a module needs, directly or
                                                      not; load them from the last to the first
          modules.symbols  alias symbol:NAME MODULE   the module that exports each symbol
          modules.alias    alias PATTERN MODULE       each module's MODULE_ALIAS values

        A module's exports are its EXPORT_SYMBOL entries; a plain object without ModKit
        metadata exports all of its global symbols of default visibility. A dependency cycle
        is an error and nothing is written.
        """
    static let options = [
        OptionDefinition(long: "dry-run", short: "n", help: "print the three files to standard output instead of writing them"),
    ]

    let directory: String?
    let dryRun: Bool

    init(arguments: ParsedArguments) throws(UsageError) {
        let operands = arguments.positionals + arguments.passthrough
        guard operands.count <= 1 else { throw UsageError("unexpected argument '\(operands[1])'") }
        directory = operands.first
        dryRun = arguments.contains("dry-run")
    }

    func run() -> Int32 {
        guard let directory = ModuleDirectoryChoice.resolve(option: directory) else {
            return Self.report(ToolFailure(["no module directory given",
                                            "hint: pass DIR, set MODKIT_MODULE_PATH, or start the daemon with --module-dir DIR"]))
        }
        do throws(ModuleDirectoryError) {
            let index = try ModuleIndex(scanning: directory)
            for warning in index.warnings {
                writeToStandardError("modkit depmod: WARNING: \(warning)\n")
            }
            if dryRun {
                print(index.modulesDep + index.modulesSymbols + index.modulesAlias, terminator: "")
            } else {
                try index.write()
            }
            return ExitStatus.success
        } catch {
            return Self.report(ToolFailure(error.message))
        }
    }
}
