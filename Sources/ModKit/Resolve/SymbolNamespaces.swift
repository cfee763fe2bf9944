extension ResolvedSymbols {
    /// Checks that the module imports, with `MODULE_IMPORT_NS`, the namespace of every
    /// namespaced export it binds, as Linux's `verify_namespace_is_imported` does.
    func checkNamespaces(imported: [String], module: String, file: String) throws(LoadError) {
        let imported = Set(imported)
        let missing = boundExports
            .filter { export in export.namespace.map { !$0.isEmpty && !imported.contains($0) } ?? false }
            .sorted { $0.name < $1.name }
        guard let first = missing.first else { return }

        var lines = missing.map { "module \(module) uses symbol \($0.name) from namespace \($0.namespace!), but does not import it." }
        var hinted: Set<String> = []
        for export in missing where hinted.insert(export.namespace!).inserted {
            lines.append(">>> add MODULE_IMPORT_NS(\(export.namespace!)); to the module's source")
        }
        throw LoadError(.namespaceNotImported, file: file, symbol: first.name, lines.joined(separator: "\n"))
    }
}
