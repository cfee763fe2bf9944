/// The symbols exported by loaded modules. Guarded by the host's registry lock.
///
/// Declared exports (`EXPORT_SYMBOL`) are indexed by name. A plain object exports every global
/// it defines; its symbol table is consulted in place rather than copied, so loading one costs
/// nothing here while no other module is loaded.
struct ExportTable {
    private(set) var declared: [String: ExportedSymbol] = [:]
    private var plain: [(owner: String, symbols: ModuleGlobals)] = []

    var isEmpty: Bool { declared.isEmpty && plain.isEmpty }

    /// Adds `module`'s exports, or throws naming both modules if a name is already exported.
    mutating func add(_ module: Module, file: String) throws(LoadError) {
        try checkHostSymbols(module, file: file)
        if let globals = module.exportedGlobals {
            for (name, export) in declared where globals.export(name, owner: module.name) != nil {
                throw duplicate(name, existing: export.owner, module: module.name, file: file)
            }
            for other in plain {
                let (small, large) = other.symbols.count < globals.count ? (other.symbols, globals) : (globals, other.symbols)
                if let name = small.names.first(where: { large.export($0, owner: "") != nil }) {
                    throw duplicate(name, existing: other.owner, module: module.name, file: file)
                }
            }
            plain.append((module.name, globals))
            return
        }
        for export in module.exports {
            if let existing = self[export.name] {
                throw duplicate(export.name, existing: existing.owner, module: module.name, file: file)
            }
        }
        for export in module.exports { declared[export.name] = export }
    }

    /// Throws when `module` exports a name of the host API (`printk`, `atexit`), which would
    /// otherwise bind in later modules in place of the host's function, as Linux rejects a
    /// module that exports a symbol of the kernel.
    private func checkHostSymbols(_ module: Module, file: String) throws(LoadError) {
        let names = module.exportedGlobals.map { globals in HostBridge.hostSymbols.keys.filter { globals.export($0, owner: "") != nil } }
            ?? module.exports.map(\.name).filter { HostBridge.hostSymbols[$0] != nil }
        guard let name = names.min() else { return }
        throw LoadError(.duplicateSymbol, file: file, symbol: name,
                        "module \(module.name) exports duplicate symbol \(name) (owned by the host); rename the module's symbol, or give it hidden visibility or static linkage")
    }

    private func duplicate(_ name: String, existing: String, module: String, file: String) -> LoadError {
        LoadError(.duplicateSymbol, file: file, symbol: name,
                  "module \(module) exports duplicate symbol \(name) (owned by \(existing)); remove one of the two exports, or remove module \(existing) first")
    }

    mutating func remove(_ module: Module) {
        if module.exportedGlobals != nil {
            plain.removeAll { $0.owner == module.name }
            return
        }
        for export in module.exports where declared[export.name]?.owner == module.name {
            declared[export.name] = nil
        }
    }

    subscript(name: String) -> ExportedSymbol? {
        if let export = declared[name] { return export }
        for module in plain {
            if let export = module.symbols.export(name, owner: module.owner) { return export }
        }
        return nil
    }
}

/// The global symbols a module defines, as the link left them.
struct ModuleGlobals {
    var symbols: ModuleSymbols
    var addresses: [[UInt64]]

    var count: Int { symbols.definitionCount }
    var names: [String] { symbols.definitions.map(\.name) }

    /// The export a plain object makes of `name`: defined here with default visibility.
    func export(_ name: String, owner: String) -> ExportedSymbol? {
        guard let definition = symbols.definition(named: name), definition.isVisible else { return nil }
        return ExportedSymbol(name: name, address: addresses[definition.object][definition.index], owner: owner,
                              gplOnly: false, namespace: nil)
    }
}
