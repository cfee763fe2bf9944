/// The symbols exported by loaded modules, by name. Guarded by the host's registry lock.
struct ExportTable {
    private(set) var symbols: [String: ExportedSymbol] = [:]

    /// Adds `module`'s exports, or throws naming both modules if a name is already exported.
    mutating func add(_ exports: [ExportedSymbol], module: String, file: String) throws(LoadError) {
        for export in exports {
            if let existing = symbols[export.name] {
                throw LoadError(.duplicateSymbol, file: file, symbol: export.name,
                                "exported symbol '\(export.name)' is already exported by module \(existing.owner); module \(module) cannot export it too")
            }
        }
        for export in exports { symbols[export.name] = export }
    }

    mutating func remove(owner: String) {
        symbols = symbols.filter { $0.value.owner != owner }
    }

    subscript(name: String) -> ExportedSymbol? { symbols[name] }
}
