import Glibc
import ModKit

/// `modkit modprobe`: loads a module with everything it needs, or removes it with what it
/// no longer needs, using the index that `modkit depmod` writes.
struct ModprobeCommand: Command {
    static let name = "modprobe"
    static let summary = "load or remove a module together with its dependencies"
    static let usage = "modkit modprobe [-r] [-w] [-f] [--show-depends] [-C FILE] [--module-dir DIR] NAME [PARAM=VALUE ...]"
    static let discussion = """
        Resolves NAME through the configuration's aliases, then modules.dep, modules.alias
        and modules.symbols ('symbol:FUNCTION') of the module directory, and loads every
        module it needs first, in modules.dep order, skipping modules already loaded. Each
        module is passed to the daemon as an open descriptor (finit_module).

        The configuration is modprobe.d(5) text: 'options MODULE PARAM=VALUE...' parameters
        come before those of the command line; 'alias PATTERN MODULE' adds names;
        'blacklist MODULE' keeps aliases from loading MODULE (its own name still works);
        'softdep MODULE pre: A post: B' loads A before and B after MODULE. It is -C FILE (a
        file or a directory of *.conf files), else the daemon's --config.

        With -f (or --force-vermagic, --force-modversion for one of the two checks), the
        daemon loads each module even when its vermagic differs from the daemon's or the
        CRCs it recorded for imported symbols disagree with the exporters', and taints the
        module and the daemon with F.

        With -r, removes the module and then every module it needed that nothing uses any
        more. The module directory is --module-dir, else $MODKIT_MODULE_PATH, else the
        daemon's --module-dir.

        Exit status: 0 on success, 1 when a module is missing or fails to load or be removed,
        2 for an invalid command line, 3 when no daemon accepts the connection, 4 when it
        rejects this client.
        """
    static let options = [
        OptionDefinition(long: "remove", short: "r", help: "remove the module and the dependencies nothing else uses"),
        OptionDefinition(long: "wait", short: "w", help: "with -r, wait until the module is unused, then remove it"),
        OptionDefinition(long: "force", short: "f", help: "load despite a vermagic or symbol version mismatch, tainting with F"),
        OptionDefinition(long: "force-vermagic", help: "load despite a vermagic mismatch, tainting with F"),
        OptionDefinition(long: "force-modversion", help: "load despite a symbol version mismatch, tainting with F"),
        OptionDefinition(long: "show-depends", help: "print the insmod commands that loading would run, and load nothing"),
        OptionDefinition(long: "config", short: "C", valueName: "FILE", help: "read the configuration from FILE or from the *.conf files of a directory"),
        OptionDefinition(long: "module-dir", valueName: "DIR", help: "the directory with the modules and their index"),
    ]

    let target: String
    let parameters: [String]
    let removes: Bool
    let waits: Bool
    let showsDependencies: Bool
    let options: LoadOptions
    let configPath: String?
    let moduleDirectory: String?

    init(arguments: ParsedArguments) throws(UsageError) {
        let operands = arguments.positionals + arguments.passthrough
        guard let target = operands.first else { throw UsageError("missing module name") }
        self.target = target
        parameters = Array(operands.dropFirst())
        removes = arguments.contains("remove")
        waits = arguments.contains("wait")
        showsDependencies = arguments.contains("show-depends")
        var options: LoadOptions = arguments.contains("force") ? .force : []
        if arguments.contains("force-vermagic") { options.insert(.ignoreVersionMagic) }
        if arguments.contains("force-modversion") { options.insert(.ignoreSymbolVersions) }
        self.options = options
        configPath = arguments.value("config")
        moduleDirectory = arguments.value("module-dir")
        if removes && !parameters.isEmpty { throw UsageError("-r takes no parameters, only module names") }
        if removes && !options.isEmpty { throw UsageError("-f applies only to loading; remove by force with modkit rmmod -f") }
        if waits && !removes { throw UsageError("-w applies only with -r") }
    }

    func run() -> Int32 {
        do throws(ToolFailure) {
            let context = try ModprobeContext(moduleDirectory: moduleDirectory, configPath: configPath)
            for warning in context.configuration.warnings {
                writeToStandardError("modkit modprobe: WARNING: \(warning)\n")
            }
            if removes {
                try remove(context)
            } else {
                try load(context)
            }
            return ExitStatus.success
        } catch {
            return Self.report(error)
        }
    }

    // MARK: Loading

    private func load(_ context: ModprobeContext) throws(ToolFailure) {
        let names = context.resolve(target.normalizedModuleName)
        guard !names.isEmpty else {
            throw ToolFailure("Module \(target) not found in directory \(context.database.directory)", severity: "FATAL")
        }
        var plan: [String] = []
        for name in names { context.plan(name, into: &plan) }
        let requested = Set(names)

        if showsDependencies {
            for name in plan {
                let options = context.parameters(for: name, extra: requested.contains(name) ? parameters : [])
                print("insmod \(context.database.file(ofModule: name) ?? name) \(options)")
            }
            return
        }

        let loaded = Set(try Self.loadedModules().map(\.name))
        for name in plan where !loaded.contains(name) {
            guard let file = context.database.file(ofModule: name) else {
                throw ToolFailure("Module \(name) not found in directory \(context.database.directory)")
            }
            let options = context.parameters(for: name, extra: requested.contains(name) ? parameters : [])
            try Self.insert(name: name, file: file, parameters: options, loadOptions: self.options)
        }
    }

    private static func insert(name: String, file: String, parameters: String, loadOptions: LoadOptions) throws(ToolFailure) {
        let descriptor = open(file, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ToolFailure("could not insert '\(name)': \(Errno(errno))") }
        defer { close(descriptor) }
        let reply = try DaemonAccess.send(.loadFile(name: file, parameters: parameters, options: loadOptions), passing: descriptor)
        // Another client loaded it in the meantime; modprobe's goal is met.
        guard reply.succeeded || reply.status == EEXIST else {
            throw ToolFailure(["could not insert '\(name)': \(moduleErrorText(reply.status))", reply.message])
        }
    }

    static func loadedModules() throws(ToolFailure) -> [ModuleRecord] {
        let reply = try DaemonAccess.send(.list)
        guard reply.succeeded else { throw ToolFailure(reply.message) }
        do throws(ProtocolError) {
            var records: [ModuleRecord] = []
            for fields in try reply.fields.records(.module) { records.append(try ModuleRecord(fields)) }
            return records
        } catch {
            throw ToolFailure("invalid reply from the daemon: \(error)", status: ExitStatus.rejected)
        }
    }

    // MARK: Removal

    private func remove(_ context: ModprobeContext) throws(ToolFailure) {
        let requested = target.normalizedModuleName
        let loaded = try Self.loadedModules()
        let names = loaded.contains { $0.name == requested } ? [requested] : context.resolve(requested)
        guard let name = names.first(where: { candidate in loaded.contains { $0.name == candidate } }) else {
            throw ToolFailure("Module \(requested) is not currently loaded", severity: "FATAL")
        }
        try RmmodCommand.remove(name, wait: waits, force: false)

        // Then whatever it needed, users before the modules they use, if nothing else uses it.
        let softDependencies = context.configuration.softDependencies[name]
        var candidates = (softDependencies?.post ?? []).reversed().map { $0 }
        candidates += (context.database.dependencies[name] ?? []).map(ModuleDatabase.moduleName(ofPath:))
        candidates += (softDependencies?.pre ?? []).reversed()
        for candidate in candidates {
            guard let module = try Self.loadedModules().first(where: { $0.name == candidate }),
                  module.users.isEmpty, module.referenceCount == 0 else { continue }
            try? RmmodCommand.remove(candidate, wait: false, force: false)
        }
    }
}

/// The module directory's index and the configuration that modprobe works from.
struct ModprobeContext {
    let database: ModuleDatabase
    let configuration: ModprobeConfiguration

    init(moduleDirectory: String?, configPath: String?) throws(ToolFailure) {
        let daemon = moduleDirectory == nil || configPath == nil ? DaemonAccess.daemonInfoIfRunning() : nil
        guard let directory = moduleDirectory.map(absolutePath) ?? DaemonSocketPath.environment("MODKIT_MODULE_PATH").map(absolutePath)
            ?? daemon?.moduleDirectory else {
            throw ToolFailure(["no module directory given",
                               "hint: pass --module-dir DIR, set MODKIT_MODULE_PATH, or start the daemon with --module-dir DIR"])
        }
        do throws(ModuleDirectoryError) {
            database = try ModuleDatabase(directory: directory)
            if let path = configPath ?? daemon?.configFile {
                configuration = try ModprobeConfiguration(contentsOf: path)
            } else {
                configuration = ModprobeConfiguration()
            }
        } catch {
            throw ToolFailure(error.message)
        }
    }

    /// Returns the modules `name` resolves to: a configured alias, the module itself, an alias
    /// of modules.alias, or the exporter of `symbol:NAME`. Aliases skip blacklisted modules.
    func resolve(_ name: String) -> [String] {
        let configured = configuration.modules(matchingAlias: name)
        if !configured.isEmpty { return configured.filter { !configuration.blacklist.contains($0) } }
        if database.paths[name] != nil { return [name] }
        return database.modules(matchingAlias: name).filter { !configuration.blacklist.contains($0) }
    }

    /// Appends `name` after its soft pre-dependencies and everything it needs, and before its
    /// soft post-dependencies, each once. A soft dependency cycle is cut where it closes.
    func plan(_ name: String, into plan: inout [String]) {
        var visiting = Set<String>()
        self.plan(name, into: &plan, visiting: &visiting)
    }

    private func plan(_ name: String, into plan: inout [String], visiting: inout Set<String>) {
        guard !plan.contains(name), visiting.insert(name).inserted else { return }
        let softDependencies = configuration.softDependencies[name]
        for pre in softDependencies?.pre ?? [] { self.plan(pre, into: &plan, visiting: &visiting) }
        for path in (database.dependencies[name] ?? []).reversed() {
            self.plan(ModuleDatabase.moduleName(ofPath: path), into: &plan, visiting: &visiting)
        }
        if !plan.contains(name) { plan.append(name) }
        for post in softDependencies?.post ?? [] { self.plan(post, into: &plan, visiting: &visiting) }
    }

    /// Returns the configured options of `name`, then `extra`, as one parameter string.
    func parameters(for name: String, extra: [String]) -> String {
        parameterString((configuration.options[name] ?? []) + extra)
    }
}
