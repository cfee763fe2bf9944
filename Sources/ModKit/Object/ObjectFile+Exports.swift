/// A symbol that a module file exports, read from the file without loading it.
public struct FileExport: Sendable, Equatable {
    public var name: String
    /// The namespace of `EXPORT_SYMBOL_NS`, or nil.
    public var namespace: String?
    public var gplOnly: Bool
}

extension ObjectFile {
    /// The size of one `struct modkit_ksym` in `.modkit.ksymtab`: four 8-byte fields (address,
    /// name, namespace, flags).
    static let ksymEntrySize = 32

    /// Whether the object carries ModKit module metadata (`.modinfo` or a `.modkit.*` section),
    /// which decides how its exports are found.
    public var hasModuleMetadata: Bool {
        sections.contains { $0.name == ".modinfo" || $0.name.hasPrefix(".modkit.") }
    }

    /// Returns the symbols the file exports, sorted by name: the `EXPORT_SYMBOL` entries of a module,
    /// or every defined global symbol of default visibility of a plain object. This is what
    /// the loader exports once the file is loaded, as a single-object module.
    public func exportedSymbols() throws(LoadError) -> [FileExport] {
        let exports = hasModuleMetadata ? try declaredExports() : globalDefinitions()
        return exports.sorted { $0.name < $1.name }
    }

    /// Global symbols the file uses but does not define, sorted, each with whether every
    /// reference is weak.
    public var undefinedSymbols: [(name: String, isWeak: Bool)] {
        let defined = Set(globalDefinitions(anyVisibility: true).map(\.name))
        var undefined: [String: Bool] = [:]
        for (index, symbol) in symbols.enumerated() where !symbol.isLocal && symbol.isUndefined {
            let name = symbolName(index)
            guard !name.isEmpty, !defined.contains(name) else { continue }
            undefined[name] = (undefined[name] ?? true) && symbol.isWeak
        }
        return undefined.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    private func globalDefinitions(anyVisibility: Bool = false) -> [FileExport] {
        var names = Set<String>()
        for (index, symbol) in symbols.enumerated() where !symbol.isLocal && !symbol.isUndefined {
            guard anyVisibility || symbol.visibility == 0, symbol.type != ELF.STT_SECTION, symbol.type != ELF.STT_FILE else { continue }
            let name = symbolName(index)
            if !name.isEmpty { names.insert(name) }
        }
        return names.map { FileExport(name: $0, namespace: nil, gplOnly: false) }
    }

    /// Reads `.modkit.ksymtab`: each entry's name and namespace are pointers that only
    /// relocations fill in, so they are found through the section's `SHT_RELA` entries.
    private func declaredExports() throws(LoadError) -> [FileExport] {
        var exports: [FileExport] = []
        for section in sections where section.name == ".modkit.ksymtab" && section.hasFileContents {
            guard section.size % Self.ksymEntrySize == 0 else {
                throw LoadError(.badMetadata, file: name, section: section.name,
                                "export table size \(section.size) is not a multiple of \(Self.ksymEntrySize) bytes; rebuild with this version's <modkit/module.h>")
            }
            var relocationsByOffset: [UInt64: Relocation] = [:]
            for relocationSection in relocationSections where relocationSection.target == section.index {
                for relocation in relocationSection.relocations { relocationsByOffset[relocation.offset] = relocation }
            }
            let contents = contents(of: section.index)
            for entry in 0 ..< section.size / Self.ksymEntrySize {
                let base = UInt64(entry * Self.ksymEntrySize)
                guard let nameRelocation = relocationsByOffset[base + 8],
                      let exportName = string(at: nameRelocation), !exportName.isEmpty else {
                    throw LoadError(.badMetadata, file: name, section: section.name, offset: base,
                                    "export entry \(entry) has no name string")
                }
                let namespace = relocationsByOffset[base + 16].flatMap { string(at: $0) }
                let flags = contents.loadUnaligned(fromByteOffset: Int(base) + 24, as: UInt64.self)
                exports.append(FileExport(name: exportName, namespace: namespace, gplOnly: UInt64(littleEndian: flags) & 1 != 0))
            }
        }
        return exports
    }

    /// Returns the NUL-terminated string that a relocation points to (its symbol plus addend), or nil
    /// when it does not lie inside one section of the file.
    private func string(at relocation: Relocation) -> String? {
        guard relocation.symbolIndex < symbols.count else { return nil }
        let symbol = symbols[relocation.symbolIndex]
        let sectionIndex = Int(symbol.sectionIndex)
        guard !symbol.isUndefined, sectionIndex < sections.count, sections[sectionIndex].hasFileContents else { return nil }
        let base = symbol.type == ELF.STT_SECTION ? 0 : Int64(bitPattern: symbol.value)
        let offset = base + relocation.addend
        let bytes = contents(of: sectionIndex)
        guard offset >= 0, offset < bytes.count else { return nil }
        let tail = bytes[Int(offset)...]
        guard let end = tail.firstIndex(of: 0) else { return nil }
        return String(decoding: bytes[Int(offset) ..< end], as: UTF8.self)
    }
}
