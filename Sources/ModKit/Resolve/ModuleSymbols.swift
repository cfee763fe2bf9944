/// What a symbol table entry refers to after merging the module's objects.
enum SymbolBinding {
    case local
    /// A global the module defines at `location`.
    case defined(SymbolLocation, isCommon: Bool)
    /// A global from outside the module: an index into `ModuleSymbols.undefinedNames`.
    case external(Int)
}

/// Where a global symbol of the module is defined.
struct ModuleDefinition {
    var object: Int
    var index: Int
    var isWeak: Bool
    var isCommon: Bool
    /// Default visibility: what a plain object exports.
    var isVisible: Bool
    /// For COMMON symbols: the largest size and alignment any object asked for.
    var commonSize: UInt64
    var commonAlignment: UInt64
}

/// The module-wide symbol table: global definitions merged across its objects, COMDAT groups
/// selected, and the list of symbols that must come from outside the module.
struct ModuleSymbols: @unchecked Sendable {
    /// The merged definitions, in the order their names were first seen.
    private(set) var definitionList: [ModuleDefinition] = []
    private(set) var definitionNames: [SymbolName] = []
    private var definitionIndex = SymbolNameTable()
    /// For each object, whether each section is kept (false for duplicate COMDAT members).
    var keptSections: [[Bool]]
    /// Globals referenced but not defined in the module, with whether every reference is weak.
    private(set) var undefinedNames: [String] = []
    private(set) var undefinedAllWeak: [Bool] = []
    private var undefinedIndex = SymbolNameTable()
    /// Per object, per symbol: the raw name of each global symbol (nil for locals).
    private var globalNames: [[SymbolName?]]
    /// Per object, per symbol: for a global, where the module defines it (which may be another
    /// object), or the index of its name in `undefinedNames`. Later stages use these instead of
    /// looking names up again.
    private(set) var bindings: [[SymbolBinding]] = []

    init(objects: [ObjectFile]) throws(LoadError) {
        keptSections = objects.map { Array(repeating: true, count: $0.sections.count) }
        globalNames = objects.map { object in
            object.symbols.indices.map { object.symbols[$0].isLocal ? nil : object.rawSymbolName($0) }
        }
        selectGroups(objects)
        try mergeDefinitions(objects)
        collectUndefined(objects)
        bindGlobals()
    }

    /// The definition of the global `name`, if the module defines it.
    func definition(named name: String) -> ModuleDefinition? {
        SymbolName.with(name) { definitionIndex[$0] }.map { definitionList[$0] }
    }

    /// Every global the module defines, by name.
    var definitions: [(name: String, definition: ModuleDefinition)] {
        zip(definitionNames, definitionList).map { ($0.string, $1) }
    }

    var definitionCount: Int { definitionList.count }

    /// The COMMON symbols, sorted by name, which the layout allocates.
    var commonDefinitions: [(name: String, definition: ModuleDefinition)] {
        zip(definitionNames, definitionList).filter { $1.isCommon }.map { ($0.string, $1) }.sorted { $0.name < $1.name }
    }

    /// The name of a global symbol.
    func globalName(object: Int, index: Int) -> String {
        globalNames[object][index]!.string
    }

    func rawGlobalName(object: Int, index: Int) -> SymbolName {
        globalNames[object][index]!
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
        definitionIndex = SymbolNameTable(minimumCapacity: objects.reduce(0) { $0 + $1.symbols.count })
        for (objectIndex, object) in objects.enumerated() {
            for (index, symbol) in object.symbols.enumerated() where !symbol.isLocal && isDefined(symbol, inObject: objectIndex) {
                let name = globalNames[objectIndex][index]!
                let candidate = ModuleDefinition(object: objectIndex, index: index, isWeak: symbol.isWeak, isCommon: symbol.isCommon,
                                                 isVisible: symbol.visibility == 0,
                                                 commonSize: symbol.isCommon ? symbol.size : 0,
                                                 commonAlignment: symbol.isCommon ? max(symbol.value, 1) : 0)
                guard let existing = definitionIndex[name] else {
                    definitionIndex[name] = definitionList.count
                    definitionList.append(candidate)
                    definitionNames.append(name)
                    continue
                }
                definitionList[existing] = try Self.merge(definitionList[existing], candidate, name: name.string, objects: objects)
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
                let name = globalNames[objectIndex][index]!
                if definitionIndex[name] != nil { continue }
                if let existing = undefinedIndex[name] {
                    undefinedAllWeak[existing] = undefinedAllWeak[existing] && symbol.isWeak
                } else {
                    undefinedIndex[name] = undefinedNames.count
                    undefinedNames.append(name.string)
                    undefinedAllWeak.append(symbol.isWeak)
                }
            }
        }
    }

    /// Records, for every global symbol of every object, its definition or external name.
    private mutating func bindGlobals() {
        bindings = globalNames.map { names in
            names.map { name -> SymbolBinding in
                guard let name else { return .local }
                if let index = definitionIndex[name] {
                    let definition = definitionList[index]
                    return .defined(SymbolLocation(object: definition.object, index: definition.index), isCommon: definition.isCommon)
                }
                return .external(undefinedIndex[name]!)
            }
        }
    }
}
