/// One region of a module's memory, as an offset from the start of its span.
struct RegionPlan {
    var kind: RegionKind
    var offset: Int
    var size: Int
}

/// Where every loaded section, GOT entry, branch stub, COMMON symbol and the module's
/// `struct module` go, as offsets from the start of the module's span.
///
/// The plan is made before any memory is reserved, so it only needs sizes and symbol identities.
/// A symbol table entry of one of the module's objects.
struct SymbolLocation {
    var object: Int
    var index: Int
}

struct ModuleLayout {
    var zone: ModuleArea.Zone = .near
    var regions: [RegionPlan] = []
    /// Per object, per section: the offset of the section, or nil when it is not loaded.
    var sectionOffsets: [[Int?]] = []
    var gotOffset = 0
    /// Per object, per symbol: its GOT slot, or -1.
    var gotSlotOf: [[Int32]] = []
    /// For each GOT slot, one (object, symbol) that names its symbol.
    var gotOrder: [SymbolLocation] = []
    var stubOffset = 0
    /// Per object, per symbol: its branch stub, or a negative value for none.
    var stubSlotOf: [[Int32]] = []
    var stubOrder: [SymbolLocation] = []
    var commonOffsets: [String: Int] = [:]
    var moduleStructOffset = 0
    var totalSize = 0

    /// Lays out `objects`, whose relocations have been checked for support by `architecture`.
    init(objects: [ObjectFile], symbols: ModuleSymbols, architecture: any RelocationArchitecture.Type,
         moduleStruct: (size: Int, alignment: Int)) throws(LoadError) {
        var sizes = Array(repeating: 0, count: RegionKind.allCases.count)
        var alignments = Array(repeating: 1, count: RegionKind.allCases.count)
        sectionOffsets = objects.map { Array(repeating: nil, count: $0.sections.count) }

        func place(_ size: Int, alignment: Int, in kind: RegionKind) -> Int {
            let at = (sizes[kind.rawValue] + alignment - 1) & ~(alignment - 1)
            sizes[kind.rawValue] = at + size
            alignments[kind.rawValue] = max(alignments[kind.rawValue], alignment)
            return at
        }

        // Sections, in file order, each within its region.
        var regionOf: [[RegionKind?]] = []
        for (objectIndex, object) in objects.enumerated() {
            var kinds: [RegionKind?] = []
            for section in object.sections {
                let kind = symbols.keptSections[objectIndex][section.index] ? RegionKind.of(section) : nil
                kinds.append(kind)
                if let kind {
                    // An unwind table gets 4 zero bytes after it, the terminator the unwinder's
                    // registration expects (a static link takes it from crtend.o).
                    let size = section.name == ".eh_frame" ? section.size + 4 : section.size
                    sectionOffsets[objectIndex][section.index] = place(size, alignment: section.alignment, in: kind)
                }
            }
            regionOf.append(kinds)
        }

        if architecture == X86_64.self {
            try planGOTAndStubs(objects: objects, symbols: symbols, regionOf: regionOf, architecture: X86_64.self)
        } else if architecture == AArch64.self {
            try planGOTAndStubs(objects: objects, symbols: symbols, regionOf: regionOf, architecture: AArch64.self)
        } else {
            try planGOTAndStubs(objects: objects, symbols: symbols, regionOf: regionOf, architecture: architecture)
        }

        // Synthetic contents: stubs end the text region, the GOT goes to relro, the rest to data.
        let stubStart = place(stubOrder.count * architecture.stubSize, alignment: architecture.stubAlignment, in: .text)
        let gotStart = place(max(gotOrder.count, 1) * 8, alignment: 8, in: .relro)
        let structStart = place(moduleStruct.size, alignment: moduleStruct.alignment, in: .data)
        var commonStarts: [String: Int] = [:]
        for (name, definition) in symbols.commonDefinitions {
            guard definition.commonAlignment.nonzeroBitCount == 1, definition.commonAlignment <= 4096,
                  definition.commonSize < 1 << 31 else {
                throw LoadError(.badSymbolTable, file: objects[definition.object].name, symbol: name,
                                "COMMON symbol '\(name)' has invalid size \(definition.commonSize) or alignment \(definition.commonAlignment)")
            }
            commonStarts[name] = place(Int(definition.commonSize), alignment: Int(definition.commonAlignment), in: .data)
        }

        // Regions, each starting on a page.
        let pageSize = SystemCalls.pageSize
        var regionStarts = Array(repeating: 0, count: RegionKind.allCases.count)
        var cursor = 0
        for kind in RegionKind.allCases {
            let alignment = max(pageSize, alignments[kind.rawValue])
            cursor = (cursor + alignment - 1) & ~(alignment - 1)
            regionStarts[kind.rawValue] = cursor
            let size = sizes[kind.rawValue]
            guard size > 0 else { continue }
            regions.append(RegionPlan(kind: kind, offset: cursor, size: size))
            cursor += (size + pageSize - 1) & ~(pageSize - 1)
        }
        totalSize = cursor
        guard totalSize < Int(Int32.max) else {
            throw LoadError(.outOfAddressSpace, file: objects.first?.name ?? "",
                            "module needs \(totalSize >> 20) MiB, more than fits within 32-bit reach of itself (2 GiB)")
        }

        for objectIndex in sectionOffsets.indices {
            for sectionIndex in sectionOffsets[objectIndex].indices {
                guard let offset = sectionOffsets[objectIndex][sectionIndex], let kind = regionOf[objectIndex][sectionIndex] else { continue }
                sectionOffsets[objectIndex][sectionIndex] = regionStarts[kind.rawValue] + offset
            }
        }
        stubOffset = regionStarts[RegionKind.text.rawValue] + stubStart
        gotOffset = regionStarts[RegionKind.relro.rawValue] + gotStart
        moduleStructOffset = regionStarts[RegionKind.data.rawValue] + structStart
        commonOffsets = commonStarts.mapValues { regionStarts[RegionKind.data.rawValue] + $0 }
    }

    /// Scans the relocations of loaded sections once: rejects unsupported types, gives GOT
    /// entries and branch stubs to the symbols that need them, and picks the low zone when
    /// absolute 32-bit addresses are used. Global symbols share one slot across objects.
    private mutating func planGOTAndStubs<Architecture: RelocationArchitecture>(
        objects: [ObjectFile], symbols: ModuleSymbols, regionOf: [[RegionKind?]], architecture: Architecture.Type
    ) throws(LoadError) {
        gotSlotOf = objects.map { Array(repeating: -1, count: $0.symbols.count) }
        stubSlotOf = gotSlotOf
        var needsGOTEntry = objects.map { Array(repeating: false, count: $0.symbols.count) }
        var stubByName: [SymbolName: Int32] = [:]

        for (objectIndex, object) in objects.enumerated() {
            for relocationSection in object.relocationSections where regionOf[objectIndex][relocationSection.target] != nil {
                for relocation in relocationSection.relocations {
                    let traits: RelocationTraits
                    if case .supported(let supported) = Architecture.support(of: relocation.type) {
                        traits = supported
                    } else {
                        traits = try Self.traits(of: relocation, in: relocationSection, object: object, architecture: architecture)
                    }
                    if traits.isEmpty { continue }
                    if traits.contains(.absolute32) { zone = .low }
                    let index = relocation.symbolIndex
                    let symbol = object.symbols[index]
                    let location = SymbolLocation(object: objectIndex, index: index)

                    if traits.contains(.usesGOTEntry) { needsGOTEntry[objectIndex][index] = true }
                    // Only symbols that may live outside the module can be out of branch reach;
                    // -2 marks a global the module defines itself, so its name is looked up once.
                    if traits.contains(.branch), !symbol.isLocal, stubSlotOf[objectIndex][index] == -1 {
                        guard case .external = symbols.bindings[objectIndex][index] else {
                            stubSlotOf[objectIndex][index] = -2
                            continue
                        }
                        let name = symbols.rawGlobalName(object: objectIndex, index: index)
                        stubSlotOf[objectIndex][index] = stubByName[name] ?? {
                            stubByName[name] = Int32(stubOrder.count)
                            stubOrder.append(location)
                            return Int32(stubOrder.count - 1)
                        }()
                    }
                }
            }
        }
        assignGOTSlots(objects: objects, symbols: symbols, needsGOTEntry: needsGOTEntry)
    }

    /// Numbers the GOT entries in symbol table order: global symbols first, by the object and
    /// symbol table entry that first names them, then each object's local symbols. ld.lld
    /// (version 21) orders its `.got` the same way, so `modkit link` output can be compared
    /// with ld.lld's byte for byte.
    private mutating func assignGOTSlots(objects: [ObjectFile], symbols: ModuleSymbols, needsGOTEntry: [[Bool]]) {
        var globalsNeeded = Set<SymbolName>()
        for (objectIndex, object) in objects.enumerated() {
            for index in object.symbols.indices where needsGOTEntry[objectIndex][index] && !object.symbols[index].isLocal {
                globalsNeeded.insert(symbols.rawGlobalName(object: objectIndex, index: index))
            }
        }
        var gotByName: [SymbolName: Int32] = [:]
        if !globalsNeeded.isEmpty {
            for (objectIndex, object) in objects.enumerated() {
                for (index, symbol) in object.symbols.enumerated() where !symbol.isLocal {
                    let name = symbols.rawGlobalName(object: objectIndex, index: index)
                    guard globalsNeeded.contains(name) else { continue }
                    let slot = gotByName[name] ?? {
                        gotByName[name] = Int32(gotOrder.count)
                        gotOrder.append(SymbolLocation(object: objectIndex, index: index))
                        return Int32(gotOrder.count - 1)
                    }()
                    gotSlotOf[objectIndex][index] = slot
                }
            }
        }
        for (objectIndex, object) in objects.enumerated() {
            for (index, symbol) in object.symbols.enumerated() where symbol.isLocal && needsGOTEntry[objectIndex][index] {
                gotSlotOf[objectIndex][index] = Int32(gotOrder.count)
                gotOrder.append(SymbolLocation(object: objectIndex, index: index))
            }
        }
    }

    static func traits(of relocation: Relocation, in relocationSection: RelocationSection, object: ObjectFile,
                       architecture: any RelocationArchitecture.Type) throws(LoadError) -> RelocationTraits {
        switch architecture.support(of: relocation.type) {
        case .supported(let traits):
            return traits
        case .threadLocal:
            let name = object.symbolName(relocation.symbolIndex)
            throw LoadError(.tlsNotSupported, file: object.name, section: object.sections[relocationSection.target].name,
                            offset: relocation.offset, symbol: name,
                            "relocation \(architecture.typeName(relocation.type)) against '\(name)': thread-local storage is not supported in modules; remove __thread variables or reach them through a host function")
        case .unknown:
            let name = object.symbolName(relocation.symbolIndex)
            // A type without an ELF name (every name starts with R_) is reported by number alone.
            let typeName = architecture.typeName(relocation.type)
            let type = typeName.hasPrefix("R_") ? "\(typeName) (\(relocation.type))" : "\(relocation.type)"
            throw LoadError(.unsupportedRelocation, file: object.name, section: object.sections[relocationSection.target].name,
                            offset: relocation.offset, symbol: name,
                            "unsupported relocation type \(type) against '\(name)'")
        }
    }
}
