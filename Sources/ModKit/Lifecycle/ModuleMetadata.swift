import CModKit

/// What the loader reads from a relocated module: its entry points, constructor and destructor
/// arrays, and its export table.
struct ModuleMetadata {
    var initFunction: UInt64?
    var exitFunction: UInt64?
    var constructors: [UInt64] = []
    var destructors: [UInt64] = []
    var exports: [ExportedSymbol] = []
    /// The module's `module_param` records, in `.modkit.param`.
    var parameters: [ModuleParameter] = []
    /// Addresses of the module's `.eh_frame` sections, each followed by a zero terminator.
    var unwindTables: [UInt64] = []
    /// A plain object (no ModKit metadata) exports every global symbol it defines with default
    /// visibility.
    var exportsAllGlobals = false

    init() {}

    init(job: LinkJob) throws(LoadError) {
        let sections = Self.loadedSections(job)
        initFunction = try Self.entryPoint(".modkit.init", in: sections, job: job, macro: "module_init")
        exitFunction = try Self.entryPoint(".modkit.exit", in: sections, job: job, macro: "module_exit")
        constructors = Self.functionArray(".init_array", in: sections, ascending: true)
        unwindTables = sections.filter { $0.name == ".eh_frame" && $0.size > 0 }.map(\.address)
        parameters = try Self.parameters(in: sections, job: job)
        destructors = Self.functionArray(".fini_array", in: sections, ascending: false)

        let hasMetadata = sections.contains { $0.name == ".modinfo" || $0.name.hasPrefix(".modkit.") }
        exportsAllGlobals = !hasMetadata
        exports = hasMetadata ? try Self.declaredExports(in: sections, job: job) : []
    }

    /// A loaded section with its address.
    struct PlacedSection {
        var name: String
        var address: UInt64
        var size: Int
        var file: String
    }

    private static func loadedSections(_ job: LinkJob) -> [PlacedSection] {
        var result: [PlacedSection] = []
        for (objectIndex, object) in job.objects.enumerated() {
            for section in object.sections {
                guard let offset = job.layout.sectionOffsets[objectIndex][section.index] else { continue }
                result.append(PlacedSection(name: section.name, address: job.memory.base + UInt64(offset), size: section.size, file: object.name))
            }
        }
        return result
    }

    private static func readPointer(_ address: UInt64) -> UInt64 {
        UInt64(littleEndian: UnsafeRawPointer(bitPattern: UInt(address))!.loadUnaligned(as: UInt64.self))
    }

    private static func entryPoint(_ name: String, in sections: [PlacedSection], job: LinkJob, macro: String) throws(LoadError) -> UInt64? {
        let matching = sections.filter { $0.name == name && $0.size > 0 }
        guard let first = matching.first else { return nil }
        guard matching.count == 1, first.size == 8 else {
            throw LoadError(.badMetadata, file: first.file, section: name,
                            "module has \(matching.count == 1 ? first.size / 8 : matching.count) \(macro)() entries; a module has at most one")
        }
        return readPointer(first.address)
    }

    /// Reads `.init_array` / `.fini_array` (and their `.NNNNN` priority variants) in run order.
    private static func functionArray(_ prefix: String, in sections: [PlacedSection], ascending: Bool) -> [UInt64] {
        func priority(_ name: String) -> Int {
            name == prefix ? 65536 : Int(name.dropFirst(prefix.count + 1)) ?? 65536
        }
        let matching = sections.filter { $0.name == prefix || $0.name.hasPrefix(prefix + ".") }
            .enumerated().sorted { (priority($0.element.name), $0.offset) < (priority($1.element.name), $1.offset) }.map(\.element)
        var functions: [UInt64] = []
        for section in matching {
            for index in 0 ..< section.size / 8 {
                let function = readPointer(section.address + UInt64(index * 8))
                if function != 0 && function != UInt64.max { functions.append(function) }
            }
        }
        return ascending ? functions : functions.reversed()
    }

    private static func parameters(in sections: [PlacedSection], job: LinkJob) throws(LoadError) -> [ModuleParameter] {
        let stride = MemoryLayout<kernel_param>.stride
        var parameters: [ModuleParameter] = []
        for section in sections where section.name == ".modkit.param" {
            guard section.size % stride == 0 else {
                throw LoadError(.badMetadata, file: section.file, section: section.name,
                                "parameter table size \(section.size) is not a multiple of \(stride) bytes; rebuild with this version's <modkit/module.h>")
            }
            for index in 0 ..< section.size / stride {
                let pointer = UnsafePointer<kernel_param>(bitPattern: UInt(section.address) + UInt(index * stride))!
                let entry = pointer.pointee
                for field in [UInt(bitPattern: entry.name), UInt(bitPattern: entry.type)] where job.memory.region(containing: UInt64(field)) == nil {
                    throw LoadError(.badMetadata, file: section.file, section: section.name, offset: UInt64(index * stride),
                                    "parameter entry \(index) has a name or type outside the module")
                }
                parameters.append(ModuleParameter(pointer))
            }
        }
        return parameters
    }

    private static func declaredExports(in sections: [PlacedSection], job: LinkJob) throws(LoadError) -> [ExportedSymbol] {
        var exports: [ExportedSymbol] = []
        let entrySize = MemoryLayout<modkit_ksym>.stride
        for section in sections where section.name == ".modkit.ksymtab" {
            guard section.size % entrySize == 0 else {
                throw LoadError(.badMetadata, file: section.file, section: section.name,
                                "export table size \(section.size) is not a multiple of \(entrySize) bytes; rebuild with this version's <modkit/module.h>")
            }
            for index in 0 ..< section.size / entrySize {
                let entry = UnsafeRawPointer(bitPattern: UInt(section.address) + UInt(index * entrySize))!.load(as: modkit_ksym.self)
                guard let namePointer = entry.name, job.memory.region(containing: UInt64(UInt(bitPattern: namePointer))) != nil else {
                    throw LoadError(.badMetadata, file: section.file, section: section.name, offset: UInt64(index * entrySize),
                                    "export entry \(index) has no name inside the module")
                }
                exports.append(ExportedSymbol(
                    name: String(cString: namePointer), address: UInt64(UInt(bitPattern: entry.addr)), owner: job.name,
                    gplOnly: entry.flags & UInt(MODKIT_KSYM_GPL_ONLY) != 0, namespace: entry.ns.map { String(cString: $0) }))
                exports[exports.count - 1].crc = job.versions.exportCRCs[exports[exports.count - 1].name]
            }
        }
        return exports
    }
}
