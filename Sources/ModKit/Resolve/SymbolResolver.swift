import Glibc

/// A symbol some loaded module exports.
public struct ExportedSymbol: Sendable {
    public var name: String
    public var address: UInt64
    /// The exporting module's name.
    public var owner: String
    public var gplOnly: Bool
    public var namespace: String?
    /// The version CRC of the symbol's type, from the exporter's `.modkit.crcs`; nil when the
    /// exporter was built without versions.
    public var crc: UInt32? = nil
}

/// The result of resolution: an address for every symbol of every object.
struct ResolvedSymbols {
    /// Per object, per symbol table entry.
    var addresses: [[UInt64]]
    /// The module's undefined globals (`ModuleSymbols.undefinedNames`) and where each was
    /// found, nil for one that was not.
    var externalNames: [String] = []
    var externalOrigins: [ExternalOrigin?] = []
    /// Other modules' exports this module binds; each makes the exporter a dependency.
    var boundExports: [ExportedSymbol] = []

    /// Returns where the undefined global `name` was found. Only error messages need it, so
    /// it searches the names one by one.
    func origin(of name: String) -> ExternalOrigin? {
        guard let index = externalNames.firstIndex(of: name), index < externalOrigins.count else { return nil }
        return externalOrigins[index]
    }
}

/// The module's undefined globals as resolution found them.
struct ExternalSymbols {
    /// The address of each name of `ModuleSymbols.undefinedNames`, 0 for an undefined weak one.
    var addresses: [UInt64]
    /// The origin of each name, nil for a missing one.
    var origins: [ExternalOrigin?]
    var boundExports: [ExportedSymbol] = []
}

/// Where an undefined symbol was found.
enum ExternalOrigin {
    case module(String)
    case host
    case process
    case undefinedWeak
}

/// Looks up every symbol of a module, in order: the module's own definitions, the exports of
/// loaded modules, the host's export table (the ModKit API), then the process's symbols when
/// the policy allows.
struct SymbolResolver {
    /// Returns the export of each name that a live module exports, nil for the others.
    var lookupExports: ([String]) -> [ExportedSymbol?]
    /// The module's `MODULE_LICENSE`, which decides whether it may bind GPL-only exports.
    var license: String?
    var hostSymbols: [String: UInt64]
    var processPolicy: ProcessSymbolPolicy
    /// The results of earlier loads of the same module, when the load cache has them.
    var lookupMemo: ExternalLookupMemo? = nil

    func resolve(objects: [ObjectFile], symbols: ModuleSymbols, layout: ModuleLayout, base: UInt64) throws(LoadError) -> ResolvedSymbols {
        let externals = try resolveExternals(objects: objects, symbols: symbols, layout: layout, base: base)
        return ResolvedSymbols(addresses: addresses(objects: objects, symbols: symbols, layout: layout, base: base,
                                                    externals: externals.addresses),
                               externalNames: symbols.undefinedNames, externalOrigins: externals.origins,
                               boundExports: externals.boundExports)
    }

    /// Looks up every global the module references but does not define, or throws listing
    /// every one that is missing.
    func resolveExternals(objects: [ObjectFile], symbols: ModuleSymbols, layout: ModuleLayout,
                          base: UInt64) throws(LoadError) -> ExternalSymbols {
        let names = symbols.undefinedNames
        var result = ExternalSymbols(addresses: Array(repeating: 0, count: names.count),
                                     origins: Array(repeating: nil, count: names.count))
        var missing: [String] = []
        var refusedGPLOnly: [String: String] = [:]

        let exports = lookupExports(names)
        let hostAndProcess = lookUpHostAndProcess(names)
        for (externalIndex, name) in names.enumerated() {
            let allWeak = symbols.undefinedAllWeak[externalIndex]
            if let address = synthetic(name, layout: layout, base: base) {
                result.addresses[externalIndex] = address
            } else if let export = exports[externalIndex] {
                if export.gplOnly && !ModuleLicense.isGPLCompatible(license) {
                    // As in Linux, a GPL-only export is invisible to a module with another license.
                    refusedGPLOnly[name] = export.owner
                    if allWeak {
                        result.origins[externalIndex] = .undefinedWeak
                    } else {
                        missing.append(name)
                    }
                } else {
                    result.addresses[externalIndex] = export.address
                    result.origins[externalIndex] = .module(export.owner)
                    result.boundExports.append(export)
                }
            } else if let (address, origin) = hostAndProcess[externalIndex] {
                result.addresses[externalIndex] = address
                result.origins[externalIndex] = origin
            } else if allWeak {
                result.origins[externalIndex] = .undefinedWeak
            } else {
                missing.append(name)
            }
        }
        if !missing.isEmpty {
            throw undefinedSymbolsError(missing.sorted(), objects: objects, refusedGPLOnly: refusedGPLOnly)
        }
        return result
    }

    /// Looks up each of `names` in the host API, then among the process's symbols that the
    /// policy permits, or takes the results from `lookupMemo` when they still hold.
    private func lookUpHostAndProcess(_ names: [String]) -> ExternalLookupMemo.Results {
        let epoch = ProcessSymbols.revalidate()
        if let epoch, let results = lookupMemo?.results(epoch: epoch, policy: processPolicy) { return results }

        var results: ExternalLookupMemo.Results = Array(repeating: nil, count: names.count)
        // Names left for the process's symbols, looked up together after the loop.
        var processNames: [Int] = []
        for (index, name) in names.enumerated() {
            if let address = hostSymbols[name] {
                results[index] = (address, .host)
            } else if processPolicy.permits(name) {
                processNames.append(index)
            }
        }
        let processAddresses = ProcessSymbols.addresses(of: processNames.map { names[$0] })
        for (index, address) in zip(processNames, processAddresses) {
            if let address { results[index] = (address, .process) }
        }

        if let epoch { lookupMemo?.store(results, epoch: epoch, policy: processPolicy) }
        return results
    }

    /// Returns the address of every symbol table entry of every object, given the addresses of
    /// the module's undefined globals.
    func addresses(objects: [ObjectFile], symbols: ModuleSymbols, layout: ModuleLayout, base: UInt64,
                   externals: [UInt64]) -> [[UInt64]] {
        // Defining entries first, so that every global can take its definition's address.
        var addresses = objects.indices.map { objectIndex in
            objects[objectIndex].symbols.map { localAddress($0, objectIndex: objectIndex, layout: layout, base: base) }
        }
        for objectIndex in objects.indices {
            for (index, binding) in symbols.bindings[objectIndex].enumerated() {
                switch binding {
                case .local:
                    continue
                case .defined(let location, let isCommon):
                    addresses[objectIndex][index] = isCommon
                        ? base + UInt64(layout.commonOffsets[symbols.globalName(object: location.object, index: location.index)]!)
                        : addresses[location.object][location.index]
                case .external(let externalIndex):
                    addresses[objectIndex][index] = externals[externalIndex]
                }
            }
        }
        return addresses
    }

    /// Symbols the loader itself defines for every module, unless the module defines them.
    private func synthetic(_ name: String, layout: ModuleLayout, base: UInt64) -> UInt64? {
        switch name {
        case "__this_module", "__dso_handle": base + UInt64(layout.moduleStructOffset)
        case "_GLOBAL_OFFSET_TABLE_": base + UInt64(layout.gotOffset)
        default: nil
        }
    }

    private func localAddress(_ symbol: ObjectSymbol, objectIndex: Int, layout: ModuleLayout, base: UInt64) -> UInt64 {
        if symbol.isAbsolute { return symbol.value }
        if symbol.isUndefined || symbol.isCommon { return 0 }
        guard let offset = layout.sectionOffsets[objectIndex][Int(symbol.sectionIndex)] else { return 0 }
        return base &+ UInt64(offset) &+ symbol.value
    }

    /// Lists every missing symbol with the places that reference it, as lld does.
    private func undefinedSymbolsError(_ missing: [String], objects: [ObjectFile], refusedGPLOnly: [String: String]) -> LoadError {
        let wanted = Set(missing)
        var references: [String: [String]] = [:]
        var counts: [String: Int] = [:]
        for object in objects {
            for relocationSection in object.relocationSections {
                let section = object.sections[relocationSection.target]
                guard section.isAllocated else { continue }
                for relocation in relocationSection.relocations {
                    let symbol = object.symbols[relocation.symbolIndex]
                    guard !symbol.isLocal, symbol.isUndefined else { continue }
                    let name = object.symbolName(relocation.symbolIndex)
                    guard wanted.contains(name) else { continue }
                    counts[name, default: 0] += 1
                    if references[name, default: []].count < 3 {
                        references[name, default: []].append("\(object.name):(\(section.name)+0x\(String(relocation.offset, radix: 16)))")
                    }
                }
            }
        }
        var lines: [String] = []
        for name in missing {
            lines.append("undefined symbol: \(name)")
            if let owner = refusedGPLOnly[name] {
                lines.append(">>> module \(owner) exports it only to GPL-compatible modules, and this module's license is '\(license ?? "unspecified")'")
            }
            for place in references[name] ?? [] { lines.append(">>> referenced by \(place)") }
            let more = (counts[name] ?? 0) - (references[name]?.count ?? 0)
            if more > 0 { lines.append(">>> referenced \(more) more times") }
        }
        let gplOnlyCount = missing.filter { refusedGPLOnly[$0] != nil }.count
        var hints: [String] = []
        if gplOnlyCount < missing.count {
            hints.append(processPolicy == .allowAll
                ? "load the modules that export them first"
                : "load the modules that export them first, or allow them in the host's process symbol policy")
        }
        if gplOnlyCount > 0 {
            hints.append("a module needs a GPL-compatible MODULE_LICENSE to use GPL-only exports")
        }
        lines.append("\(missing.count) undefined symbol\(missing.count == 1 ? "" : "s"); \(hints.joined(separator: "; "))")
        return LoadError(.undefinedSymbols, file: "",
                         symbol: missing.first, lines.joined(separator: "\n"))
    }
}
