/// Where a global symbol of the module is defined.
struct ModuleDefinition {
    var object: Int
    var index: Int
    var isWeak: Bool
    var isCommon: Bool
    /// For COMMON symbols: the largest size and alignment any object asked for.
    var commonSize: UInt64
    var commonAlignment: UInt64
}

/// The module-wide symbol table: global definitions merged across its objects, COMDAT groups
/// selected, and the list of symbols that must come from outside the module.
struct ModuleSymbols {
    var definitions: [String: ModuleDefinition] = [:]
    /// For each object, whether each section is kept (false for duplicate COMDAT members).
    var keptSections: [[Bool]]
    /// Global names referenced but not defined in the module, with whether every reference is weak.
    var undefined: [String: Bool] = [:]

    init(objects: [ObjectFile]) throws(LoadError) {
        keptSections = objects.map { Array(repeating: true, count: $0.sections.count) }
        selectGroups(objects)
        try mergeDefinitions(objects)
        collectUndefined(objects)
    }

    /// Keeps the first COMDAT group of each signature and discards later copies, as a static
    /// linker does for C++ inline functions and templates.
    private mutating func selectGroups(_ objects: [ObjectFile]) {
        var seen = Set<String>()
        for (objectIndex, object) in objects.enumerated() {
            for group in object.groups where group.isComdat {
                if seen.insert(group.signature).inserted { continue }
                for member in group.members { keptSections[objectIndex][member] = false }
            }
        }
    }

    func isDefined(_ symbol: ObjectSymbol, inObject objectIndex: Int) -> Bool {
        if symbol.isUndefined { return false }
        if symbol.isCommon || symbol.isAbsolute { return true }
        return Int(symbol.sectionIndex) < keptSections[objectIndex].count && keptSections[objectIndex][Int(symbol.sectionIndex)]
    }

    private mutating func mergeDefinitions(_ objects: [ObjectFile]) throws(LoadError) {
        for (objectIndex, object) in objects.enumerated() {
            for (index, symbol) in object.symbols.enumerated() where !symbol.isLocal && isDefined(symbol, inObject: objectIndex) {
                let name = object.symbolName(index)
                let candidate = ModuleDefinition(object: objectIndex, index: index, isWeak: symbol.isWeak, isCommon: symbol.isCommon,
                                                 commonSize: symbol.isCommon ? symbol.size : 0,
                                                 commonAlignment: symbol.isCommon ? max(symbol.value, 1) : 0)
                guard let existing = definitions[name] else {
                    definitions[name] = candidate
                    continue
                }
                definitions[name] = try Self.merge(existing, candidate, name: name, objects: objects)
            }
        }
    }

    /// Combines two definitions of one name: strong beats weak and COMMON, COMMONs merge to the
    /// largest, and two strong definitions are an error.
    private static func merge(_ existing: ModuleDefinition, _ candidate: ModuleDefinition, name: String,
                              objects: [ObjectFile]) throws(LoadError) -> ModuleDefinition {
        switch (existing.isCommon, candidate.isCommon) {
        case (true, true):
            var merged = existing
            merged.commonSize = max(existing.commonSize, candidate.commonSize)
            merged.commonAlignment = max(existing.commonAlignment, candidate.commonAlignment)
            return merged
        case (true, false):
            return candidate.isWeak ? existing : candidate
        case (false, true):
            return existing.isWeak ? candidate : existing
        case (false, false):
            if candidate.isWeak { return existing }
            if existing.isWeak { return candidate }
            let first = objects[existing.object], second = objects[candidate.object]
            throw LoadError(.duplicateSymbol, file: second.name, symbol: name,
                            "duplicate symbol: \(name)\n>>> defined in \(first.name)\n>>> defined in \(second.name)")
        }
    }

    private mutating func collectUndefined(_ objects: [ObjectFile]) {
        for (objectIndex, object) in objects.enumerated() {
            for (index, symbol) in object.symbols.enumerated() where !symbol.isLocal && !isDefined(symbol, inObject: objectIndex) {
                let name = object.symbolName(index)
                if definitions[name] != nil { continue }
                undefined[name] = (undefined[name] ?? true) && symbol.isWeak
            }
        }
    }
}
