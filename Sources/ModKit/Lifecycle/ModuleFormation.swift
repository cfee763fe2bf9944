import CModKit
import Glibc

extension ModuleHost {
    /// Creates the module's record and `struct module`, publishes it as `coming` with its
    /// exports, and binds it to the modules it depends on.
    func form(_ job: LinkJob) throws(LoadError) -> Module {
        let referenceIndex: UInt32
        do {
            referenceIndex = try ReferenceSlots.allocate(file: job.file)
        } catch {
            job.memory.release()
            throw error
        }
        let structure = job.memory.pointer(job.memory.base + UInt64(job.layout.moduleStructOffset)).bindMemory(to: CModKit.module.self, capacity: 1)
        var flags = modkit_ref_mode_flags()
        if !options.unloadEnabled { flags |= MODKIT_REF_FLAG_NO_UNLOAD }
        modkit_module_struct_init(structure, strdup(job.name), referenceIndex, flags)

        let module = Module(name: job.name, files: job.objects.map(\.name), info: job.info, memory: job.memory,
                            structure: structure, referenceIndex: referenceIndex, objects: job.objects,
                            symbols: job.symbols, symbolAddresses: job.resolved.addresses)
        module.initFunction = job.metadata.initFunction
        module.exitFunction = job.metadata.exitFunction
        module.constructors = job.metadata.constructors
        module.unwindTables = job.metadata.unwindTables
        module.allParameters = job.metadata.parameters
        module.destructors = job.metadata.destructors
        module.declaredExports = job.metadata.exports
        if job.metadata.exportsAllGlobals {
            module.exportedGlobals = ModuleGlobals(symbols: job.symbols, addresses: job.resolved.addresses)
        }
        module.host = self
        structure.pointee.host = Unmanaged.passUnretained(module).toOpaque()

        let published: Result<Void, LoadError> = registry.withLock { registry in
            do throws(LoadError) {
                try publish(module, bindings: job.resolved.boundExports, in: &registry)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        if case .failure(let error) = published {
            discard(module)
            throw error
        }
        kallsyms.add(module, table: job.linkedImage?.kallsymsTable)
        noteLicense(of: module)
        return module
    }

    /// Taints the module and the host with `P` when its license is not GPL-compatible, as
    /// Linux does; no license counts as proprietary. A plain object, such as a third-party
    /// library loaded as is, has no way to declare one, so its taint is logged at debug level.
    private func noteLicense(of module: Module) {
        guard !ModuleLicense.isGPLCompatible(module.info["license"]) else { return }
        let reason = "module license '\(module.info["license"] ?? "unspecified")' is not GPL-compatible"
        addTaint(.proprietaryModule, to: module, reason: reason, level: module.exportedGlobals == nil ? 4 : 7)
    }

    private func publish(_ module: Module, bindings: [ExportedSymbol], in registry: inout Registry) throws(LoadError) {
        let file = module.files.first ?? ""
        if registry.modules[module.name] != nil {
            throw LoadError(.alreadyLoaded, file: file, "module \(module.name) is already loaded")
        }
        let exporters = Set(bindings.map(\.owner)).sorted()
        for name in exporters {
            guard let exporter = registry.modules[name], exporter.state == .live else {
                throw LoadError(.undefinedSymbols, file: file, "module \(name), whose exports \(module.name) uses, is going away")
            }
        }
        try registry.exports.add(module, file: file)
        // Each dependency holds a reference on its exporter until the importer is removed.
        for name in exporters {
            let exporter = registry.modules[name]!
            __module_get(exporter.structure)
            exporter.users.append(module.name)
        }
        module.dependencies = exporters
        module.state = .coming
        registry.modules[module.name] = module
        registry.order.append(module.name)
    }

    /// Runs the constructors and `module_init`; on success the module goes live and its init
    /// memory is freed, on failure it is unwound completely.
    func initialize(_ module: Module) throws(LoadError) {
        UnwindTables.register(module.unwindTables)
        module.unwindTablesRegistered = true
        for constructor in module.constructors { ModuleCode.callVoid(constructor) }
        let status = module.initFunction.map(ModuleCode.callInit) ?? 0
        guard status == 0 else {
            runExitHandlers(module)
            // Entries would point into memory that discard unmaps.
            removeLeftoverEntries(of: module, after: "its failed init")
            unpublish(module)
            discard(module)
            let reason = status < 0 ? " (\(String(cString: strerror(-status))))" : ""
            log(3, module: nil, "\(module.name): init failed with error \(status)\(reason)")
            var error = LoadError(.initFailed, file: module.files.first ?? "",
                                  "module \(module.name): init failed with error \(status)\(reason); the module was not loaded")
            error.initResult = status
            throw error
        }
        registry.withLock { _ in module.state = .live }
        modkit_ref_start(module.structure)
        kallsyms.removeInitSymbols(of: module)
        module.memory.releaseInitRegions()
        registry.withLock { _ in module.size = module.memory.regions.reduce(0) { $0 + $1.mappedSize } }
    }

    /// Runs the module's destructors and the `atexit` handlers its code registered, newest first.
    func runExitHandlers(_ module: Module) {
        for destructor in module.destructors { ModuleCode.callVoid(destructor) }
        let handlers = registry.withLock { _ in
            defer { module.exitHandlers = [] }
            return module.exitHandlers
        }
        for handler in handlers.reversed() {
            ModuleCode.call(handler.function, argument: handler.argument)
        }
    }

    /// Removes the module from the registry and the export table and drops its references on
    /// the modules it used.
    func unpublish(_ module: Module) {
        let exporters: [Module] = registry.withLock { registry in
            registry.exports.remove(module)
            registry.modules[module.name] = nil
            registry.order.removeAll { $0 == module.name }
            let exporters = module.dependencies.compactMap { registry.modules[$0] }
            for exporter in exporters { exporter.users.removeAll { $0 == module.name } }
            module.state = .going
            return exporters
        }
        for exporter in exporters { module_put(exporter.structure) }
    }

    /// Frees everything the module owns: its name, its reference slot and its memory.
    func discard(_ module: Module) {
        kallsyms.remove(module)
        module.parameterStrings.withLock { strings in
            for string in strings { free(string) }
            strings = []
        }
        if module.unwindTablesRegistered {
            UnwindTables.deregister(module.unwindTables)
            module.unwindTablesRegistered = false
        }
        free(UnsafeMutableRawPointer(mutating: module.structure.pointee.name))
        module.structure.pointee.name = nil
        module.structure.pointee.host = nil
        ReferenceSlots.release(module.referenceIndex)
        module.memory.release()
    }
}
