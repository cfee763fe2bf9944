import CModKit

/// The state a load carries from stage to stage.
struct LinkJob {
    var objects: [ObjectFile]
    var architecture: any RelocationArchitecture.Type
    var symbols: ModuleSymbols
    var info: ModuleInfo
    var name: String
    var layout: ModuleLayout! = nil
    var memory: ModuleMemory! = nil
    var resolved: ResolvedSymbols! = nil
    var metadata = ModuleMetadata()
    var options: LoadOptions = []
    /// The module's recorded symbol versions and the reasons it is loaded with unchecked ones.
    var versions = SymbolVersions()
    /// The address of each undefined global, as resolution found it.
    var externals: [UInt64] = []
    /// The cached objects and layout this load uses, or nil when it reads no files.
    var cacheEntry: LoadCache.Entry?
    /// The images to cache once the layout is planned, when this load read them from files.
    var imagesToCache: [ObjectImage]?
    /// The relocated image this load copied, or the one it saved for later loads.
    var linkedImage: LinkedImage?
    var reuse = LoadStatistics.Reuse.none

    var file: String { objects.first?.name ?? "" }

    /// The size and alignment of the `struct module` that the layout reserves in every module.
    static let moduleStructure = (size: MemoryLayout<CModKit.module>.size, alignment: max(64, MemoryLayout<CModKit.module>.alignment))
}

extension ModuleHost {
    /// Loads object files as one module and runs its init.
    public func load(files: [String], parameters: String = "", options: LoadOptions = []) throws(LoadError) -> Module {
        var statistics = LoadStatistics()
        return try load(files: files, parameters: parameters, options: options, statistics: &statistics)
    }

    /// Loads the object files at `files` as one module. Files unchanged since an earlier load
    /// in this process are not read or validated again (see `LoadCache`), unless this host
    /// checks signatures.
    public func load(files: [String], parameters: String = "", options: LoadOptions = [],
                     statistics: inout LoadStatistics) throws(LoadError) -> Module {
        guard !checksSignatures else {
            var images: [ObjectImage] = []
            for file in files { images.append(try ObjectImage(contentsOf: file)) }
            return try load(images, parameters: parameters, options: options, statistics: &statistics)
        }
        var job = try statistics.measure(.validate) { () throws(LoadError) in try validate(files: files) }
        return try link(&job, options: options, lacksTrustedSignature: false, parameters: parameters, statistics: &statistics)
    }

    /// Loads `images` as one module: check signatures, validate, check vermagic, lay out,
    /// resolve, check symbol versions, relocate, protect, init. `options` may skip the two
    /// version checks.
    ///
    /// On any failure every completed stage is undone in reverse order: nothing stays mapped,
    /// exported or registered.
    public func load(_ images: [ObjectImage], parameters: String = "", options: LoadOptions = [],
                     statistics: inout LoadStatistics) throws(LoadError) -> Module {
        // The signature check counts as part of validation in the statistics.
        let checked = try statistics.measure(.validate) { () throws(LoadError) in try checkSignatures(images) }
        var job = try statistics.measure(.validate) { () throws(LoadError) in try validate(checked.images) }
        return try link(&job, options: options, lacksTrustedSignature: checked.lacksTrustedSignature, parameters: parameters,
                        statistics: &statistics)
    }

    /// Runs the stages after validation.
    private func link(_ job: inout LinkJob, options: LoadOptions, lacksTrustedSignature: Bool, parameters: String,
                      statistics: inout LoadStatistics) throws(LoadError) -> Module {
        observe(.validate, job.name)
        job.options = options
        try checkVersionMagic(&job)
        try statistics.measure(.layout) { () throws(LoadError) in try layOut(&job) }
        observe(.layOut, job.name)
        do {
            try statistics.measure(.resolve) { () throws(LoadError) in try resolve(&job) }
            observe(.resolve, job.name)
            try checkSymbolVersions(&job)
            try statistics.measure(.relocate) { () throws(LoadError) in try relocate(&job) }
            observe(.relocate, job.name)
            try statistics.measure(.protect) { () throws(LoadError) in try protect(&job) }
            observe(.protect, job.name)
        } catch {
            job.memory.release()
            throw error
        }
        statistics.reuse = job.reuse
        let module = try form(job)
        if lacksTrustedSignature { noteMissingSignature(of: module) }
        noteUncheckedVersions(of: module, job: job)
        observe(.form, job.name)
        try setParameters(parameters, of: module)
        observe(.parameters, job.name)
        try statistics.measure(.initialize) { () throws(LoadError) in try initialize(module) }
        observe(.initialize, job.name)
        return module
    }

    // MARK: Stages

    /// Parses every object, checks that they suit this process, and merges their symbols.
    func validate(_ images: [ObjectImage]) throws(LoadError) -> LinkJob {
        guard !images.isEmpty else { throw LoadError(.noObjects, file: "", "no object files given") }
        var objects: [ObjectFile] = []
        for image in images { objects.append(try ObjectFile(image)) }

        let machine = objects[0].machine
        for object in objects where object.machine != machine {
            throw LoadError(.machineMismatch, file: object.name,
                            "object is for \(object.machine.rawValue), but \(objects[0].name) is for \(machine.rawValue); a module's objects must share one architecture")
        }
        guard machine == HostMachine.current, let architecture = relocationArchitecture(for: machine) else {
            throw LoadError(.machineMismatch, file: objects[0].name,
                            "object is for \(machine.rawValue), but this process runs on \(HostMachine.current.rawValue); rebuild the module for \(HostMachine.current.rawValue)")
        }
        let symbols = try ModuleSymbols(objects: objects)
        let info = ModuleInfo(objects: objects)
        let name = ModuleInfo.moduleName(info: info, firstFile: objects[0].name)
        try checkNotLoaded(name, file: objects[0].name)
        return LinkJob(objects: objects, architecture: architecture, symbols: symbols, info: info, name: name)
    }

    /// Takes the objects of `files` from the load cache when the files are unchanged, and
    /// otherwise reads and validates them.
    func validate(files: [String]) throws(LoadError) -> LinkJob {
        if let entry = LoadCache.shared.settledEntry(for: files) { return try job(reusing: entry) }
        var images: [ObjectImage] = []
        for file in files { images.append(try ObjectImage(contentsOf: file)) }
        if let entry = LoadCache.shared.entry(matching: images) { return try job(reusing: entry) }

        // This host checks no signatures, so this only cuts off well-formed ones.
        let checked = try checkSignatures(images)
        var job = try validate(checked.images)
        job.imagesToCache = images
        return job
    }

    private func job(reusing entry: LoadCache.Entry) throws(LoadError) -> LinkJob {
        try checkNotLoaded(entry.name, file: entry.objects[0].name)
        return LinkJob(objects: entry.objects, architecture: entry.architecture, symbols: entry.symbols, info: entry.info,
                       name: entry.name, layout: entry.layout, cacheEntry: entry, reuse: .objects)
    }

    private func checkNotLoaded(_ name: String, file: String) throws(LoadError) {
        if module(named: name) != nil {
            throw LoadError(.alreadyLoaded, file: file, "module \(name) is already loaded")
        }
    }

    /// Plans where everything goes and maps the module's memory, writable and not executable.
    func layOut(_ job: inout LinkJob) throws(LoadError) {
        if job.layout == nil {
            job.layout = try ModuleLayout(objects: job.objects, symbols: job.symbols, architecture: job.architecture,
                                          moduleStruct: LinkJob.moduleStructure)
        }
        if let images = job.imagesToCache {
            let entry = LoadCache.Entry(job: job)
            LoadCache.shared.insert(entry, images: images)
            job.cacheEntry = entry
        }
        // The base of the cached linked image, where that image can be copied instead of relocated.
        let preferredStart = job.cacheEntry.flatMap { LoadCache.shared.linkedImageBase(of: $0) }
        job.memory = try ModuleMemory(layout: job.layout, file: job.file, preferredStart: preferredStart)
        do {
            try job.memory.makeWritable(file: job.file)
        } catch {
            job.memory.release()
            throw error
        }
    }

    /// Gives every symbol an address: the module's own, then other modules' exports, the host
    /// API, then the process's symbols as the policy allows.
    func resolve(_ job: inout LinkJob) throws(LoadError) {
        let resolver = SymbolResolver(lookupExports: { self.exports(named: $0) }, license: job.info["license"],
                                      hostSymbols: HostBridge.hostSymbols,
                                      processPolicy: options.processSymbols, lookupMemo: job.cacheEntry?.externalLookups)
        let base = job.memory.base
        let externals = try resolver.resolveExternals(objects: job.objects, symbols: job.symbols, layout: job.layout, base: base)
        job.externals = externals.addresses
        if let entry = job.cacheEntry, let linked = LoadCache.shared.linkedImage(of: entry, base: base, externals: job.externals) {
            job.linkedImage = linked
            job.reuse = .linkedImage
        }
        let addresses = job.linkedImage?.symbolAddresses
            ?? resolver.addresses(objects: job.objects, symbols: job.symbols, layout: job.layout, base: base, externals: job.externals)
        job.resolved = ResolvedSymbols(addresses: addresses, externalNames: job.symbols.undefinedNames,
                                       externalOrigins: externals.origins, boundExports: externals.boundExports)
        try job.resolved.checkNamespaces(imported: job.info.values("import_ns"), module: job.name, file: job.file)
    }

    /// Computes and checks every relocation, then writes the image, and reads the module's
    /// metadata (init and exit functions, constructors, exports) from it. A load with the
    /// inputs of a cached linked image copies that image instead, and a load from files saves
    /// its image for the next load.
    func relocate(_ job: inout LinkJob) throws(LoadError) {
        if let linked = job.linkedImage {
            linked.copy(into: job.memory)
            job.metadata = linked.metadata
            return
        }
        let relocator = Relocator(objects: job.objects, symbols: job.symbols, layout: job.layout, resolved: job.resolved,
                                  architecture: job.architecture, base: job.memory.base)
        try relocator.check()
        relocator.copySections(into: job.memory)
        try relocator.apply(into: job.memory)
        job.metadata = try ModuleMetadata(job: job)

        if let entry = job.cacheEntry {
            let table = KallsymsTable.forModule(named: job.name, objects: job.objects, symbolAddresses: job.resolved.addresses,
                                                span: job.memory.span)
            let linked = LinkedImage(memory: job.memory, externals: job.externals, symbolAddresses: job.resolved.addresses,
                                     metadata: job.metadata, kallsymsTable: table)
            LoadCache.shared.store(linked, for: entry)
            job.linkedImage = linked
        }
    }

    /// Applies the final protections: W^X, code executable only now that it is written.
    func protect(_ job: inout LinkJob) throws(LoadError) {
        let architecture = job.architecture
        try job.memory.applyFinalProtections(file: job.file) { architecture.synchronizeInstructionCache($0, size: $1) }
    }
}

/// The machine this process runs on.
enum HostMachine {
    #if arch(x86_64)
    static let current = Machine.x86_64
    #elseif arch(arm64)
    static let current = Machine.aarch64
    #endif
}
