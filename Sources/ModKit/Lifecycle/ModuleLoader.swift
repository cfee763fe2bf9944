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

    public func load(files: [String], parameters: String = "", options: LoadOptions = [],
                     statistics: inout LoadStatistics) throws(LoadError) -> Module {
        var images: [ObjectImage] = []
        for file in files { images.append(try ObjectImage(contentsOf: file)) }
        return try load(images, parameters: parameters, options: options, statistics: &statistics)
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
        let module = try form(job)
        if checked.lacksTrustedSignature { noteMissingSignature(of: module) }
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
        if module(named: name) != nil {
            throw LoadError(.alreadyLoaded, file: objects[0].name, "module \(name) is already loaded")
        }
        return LinkJob(objects: objects, architecture: architecture, symbols: symbols, info: info, name: name)
    }

    /// Plans where everything goes and maps the module's memory, writable and not executable.
    func layOut(_ job: inout LinkJob) throws(LoadError) {
        job.layout = try ModuleLayout(objects: job.objects, symbols: job.symbols, architecture: job.architecture,
                                      moduleStruct: LinkJob.moduleStructure)
        job.memory = try ModuleMemory(layout: job.layout, file: job.file)
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
        let resolver = SymbolResolver(lookupExport: { self.export(named: $0) }, license: job.info["license"],
                                      hostSymbols: HostBridge.hostSymbols,
                                      processPolicy: options.processSymbols)
        job.resolved = try resolver.resolve(objects: job.objects, symbols: job.symbols, layout: job.layout, base: job.memory.base)
        try job.resolved.checkNamespaces(imported: job.info.values("import_ns"), module: job.name, file: job.file)
    }

    /// Computes and checks every relocation, then writes the image, and reads the module's
    /// metadata (init and exit functions, constructors, exports) from it.
    func relocate(_ job: inout LinkJob) throws(LoadError) {
        let relocator = Relocator(objects: job.objects, symbols: job.symbols, layout: job.layout, resolved: job.resolved,
                                  architecture: job.architecture, base: job.memory.base)
        try relocator.check()
        relocator.copySections(into: job.memory)
        try relocator.apply(into: job.memory)
        job.metadata = try ModuleMetadata(job: job)
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
