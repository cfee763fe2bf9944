import CModKit

/// Version checks that a load may skip, as the flags of Linux's `finit_module` do. A module
/// loaded despite a failed check taints itself and the host with `F`.
public struct LoadOptions: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Loads a module whose recorded symbol CRCs disagree with the exports it binds
    /// (`MODULE_INIT_IGNORE_MODVERSIONS`).
    public static let ignoreSymbolVersions = LoadOptions(rawValue: 1 << 0)
    /// Loads a module whose `vermagic` differs from the host's (`MODULE_INIT_IGNORE_VERMAGIC`).
    public static let ignoreVersionMagic = LoadOptions(rawValue: 1 << 1)
    /// Both, as `insmod -f` and `modprobe -f` ask.
    public static let force: LoadOptions = [.ignoreSymbolVersions, .ignoreVersionMagic]
}

/// The symbol versions a module records, read from its objects after resolution.
struct SymbolVersions {
    /// The CRC of each imported symbol as built (`.modkit.versions`), or nil for a module
    /// built without a version table.
    var imports: [String: UInt32]?
    /// The CRC of each symbol the module exports (`.modkit.crcs`).
    var exportCRCs: [String: UInt32] = [:]
    /// The checks that a forced load skipped. Each taints the module with `F`.
    var forcedReasons: [String] = []
    /// The imports that could not be checked because the module has no CRC for them. Each
    /// taints the module with `F` unless the host's options turn that off.
    var unversionedReasons: [String] = []

    init() {}

    init(objects: [ObjectFile]) throws(LoadError) {
        imports = try VersionSection.read(VersionSection.imports, in: objects)
        exportCRCs = try VersionSection.read(VersionSection.exports, in: objects) ?? [:]
    }
}

extension ModuleHost {
    /// Compares the module's `vermagic` with the host's, as Linux's `check_modinfo` does. An
    /// object that does not include `<modkit/module.h>` has no `vermagic` and is not checked.
    func checkVersionMagic(_ job: inout LinkJob) throws(LoadError) {
        let expected = String(cString: modkit_vermagic())
        var seen: Set<String> = []
        for magic in job.info.values("vermagic") where magic != expected && seen.insert(magic).inserted {
            let problem = "version magic '\(magic)' should be '\(expected)'"
            guard job.options.contains(.ignoreVersionMagic) else {
                throw LoadError(.badVersionMagic, file: job.file,
                                "\(job.name): \(problem)\n>>> rebuild the module with this version's <modkit/module.h>, or load it by force")
            }
            job.versions.forcedReasons.append("\(problem), loaded by force")
        }
    }

    /// Compares the CRC that the module recorded for each symbol it binds to another module's
    /// export or to the host API with the exporter's CRC, as Linux's `check_version` does.
    ///
    /// A mismatch rejects the load unless versions are ignored. An export without a CRC is
    /// not checked. A versioned export that the module has no CRC for is loaded with taint
    /// `F`. Symbols of the process's libraries carry no versions.
    func checkSymbolVersions(_ job: inout LinkJob) throws(LoadError) {
        let forcedReasons = job.versions.forcedReasons
        job.versions = try SymbolVersions(objects: job.objects)
        job.versions.forcedReasons = forcedReasons
        var exporters: [String: ExportedSymbol] = [:]
        for export in job.resolved.boundExports { exporters[export.name] = export }
        var unversioned: [String] = []

        // Only symbols bound to another module or to the host API can carry versions, so only
        // those are sorted by name, which fixes the order of the messages.
        let origins = zip(job.resolved.externalNames, job.resolved.externalOrigins).compactMap { name, origin in
            switch origin {
            case .module?, .host?: origin.map { (name: name, origin: $0) }
            case .process?, .undefinedWeak?, nil: nil
            }
        }
        for (name, origin) in origins.sorted(by: { $0.name < $1.name }) {
            let exported: UInt32?
            let exporter: String
            switch origin {
            case .module(let owner):
                exported = exporters[name]?.crc
                exporter = "module \(owner)"
            case .host:
                exported = HostSymbolVersions.crcs[name]
                exporter = "the host API"
            case .process, .undefinedWeak:
                continue
            }
            guard let exported else { continue }
            guard let imports = job.versions.imports else {
                unversioned.append(name)
                continue
            }
            guard let recorded = imports[name] else {
                job.versions.unversionedReasons.append("no symbol version for \(name)")
                continue
            }
            guard recorded != exported else { continue }
            guard job.options.contains(.ignoreSymbolVersions) else {
                throw LoadError(.symbolVersionMismatch, file: job.file, symbol: name, """
                    \(job.name): disagrees about version of symbol \(name)
                    >>> the module was built against CRC \(VersionSection.hex(recorded)), but \(exporter) exports CRC \(VersionSection.hex(exported))
                    >>> rebuild the module with modkit build against the exporter's current Module.symvers
                    """)
            }
            job.versions.forcedReasons.append("disagrees about version of symbol \(name), loaded by force")
        }
        if !unversioned.isEmpty {
            let listed = unversioned.prefix(4).joined(separator: ", ")
            let more = unversioned.count > 4 ? " and \(unversioned.count - 4) more" : ""
            job.versions.unversionedReasons.append("no versions for imported symbols (\(listed)\(more)); build it with modkit build")
        }
    }

    /// Taints a module loaded with a version check skipped or impossible with `F`, and logs
    /// each reason.
    func noteUncheckedVersions(of module: Module, job: LinkJob) {
        var reasons = job.versions.forcedReasons
        if options.taintsUnversionedModules { reasons += job.versions.unversionedReasons }
        guard !reasons.isEmpty else { return }
        // addTaint logs only the first time F reaches the host, so later modules log here.
        if taint.contains(.forcedLoad) {
            for reason in reasons { log(4, module: module.name, reason) }
        }
        addTaint(.forcedLoad, to: module, reason: reasons.joined(separator: "; "))
    }
}
