import Glibc

/// A failure of depmod, modprobe or modinfo to read a module directory or its index files.
public struct ModuleDirectoryError: Error, CustomStringConvertible, Sendable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// The facts depmod reads from one module file.
public struct ModuleFileEntry: Sendable, Equatable {
    /// The path relative to the module directory: `net/hello.o`.
    public var path: String
    /// The module name, as the loader will call the module.
    public var name: String
    public var exports: [String]
    public var undefined: [String]
    /// The `alias=` values of `.modinfo`.
    public var aliases: [String]
}

/// The dependency index of a module directory, as `depmod` builds it: which module needs which
/// other modules, which module exports which symbol, and the modules' aliases.
///
/// A module depends on another when it uses a symbol the other exports. Symbols that no module
/// in the directory exports are left for the host (the C library, the ModKit host API).
public struct ModuleIndex: Sendable {
    public let directory: String
    /// Every module file, sorted by path.
    public private(set) var modules: [ModuleFileEntry] = []
    /// For each module path, every module it needs, directly or not, as modules.dep lists
    /// them: a module comes before the modules it needs, so loading from the end works.
    public private(set) var dependencies: [String: [String]] = [:]
    /// For each exported symbol, the path of the module that exports it.
    public private(set) var exporters: [String: String] = [:]
    /// Problems that do not stop the index from being written: duplicate exports, names.
    public private(set) var warnings: [String] = []

    /// Scans every `.o` file under `directory` (subdirectories included).
    public init(scanning directory: String) throws(ModuleDirectoryError) {
        self.directory = directory
        for path in try Self.objectFiles(in: directory, relative: "") {
            modules.append(try Self.readEntry(directory: directory, path: path))
        }
        for module in modules {
            let fileName = ModuleInfo.moduleName(info: ModuleInfo(), firstFile: module.path)
            if module.name != fileName {
                warnings.append("\(module.path): module name '\(module.name)' differs from the file name; modprobe finds modules by file name")
            }
            for symbol in module.exports {
                if let first = exporters[symbol] {
                    warnings.append("\(module.path): symbol \(symbol) is also exported by \(first); using \(first)")
                } else {
                    exporters[symbol] = module.path
                }
            }
        }
        try computeDependencies()
    }

    private static func readEntry(directory: String, path: String) throws(ModuleDirectoryError) -> ModuleFileEntry {
        do throws(LoadError) {
            let object = try ObjectFile(ObjectImage(contentsOf: directory + "/" + path, name: path))
            let info = ModuleInfo(objects: [object])
            return ModuleFileEntry(path: path, name: ModuleInfo.moduleName(info: info, firstFile: path),
                                   exports: try object.exportedSymbols().map(\.name),
                                   undefined: object.undefinedSymbols.map(\.name), aliases: info.values("alias"))
        } catch {
            throw ModuleDirectoryError("\(error)")
        }
    }

    /// Lists `.o` files below `directory/relative`, sorted, skipping hidden entries.
    private static func objectFiles(in directory: String, relative: String) throws(ModuleDirectoryError) -> [String] {
        let full = relative.isEmpty ? directory : directory + "/" + relative
        guard let stream = opendir(full) else {
            throw ModuleDirectoryError("cannot read module directory '\(full)': \(Errno(errno))")
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if !name.hasPrefix(".") { names.append(name) }
        }
        var files: [String] = []
        for name in names.sorted() {
            let path = relative.isEmpty ? name : relative + "/" + name
            var status = stat()
            guard stat(directory + "/" + path, &status) == 0 else { continue }
            if status.st_mode & S_IFMT == S_IFDIR {
                files += try objectFiles(in: directory, relative: path)
            } else if status.st_mode & S_IFMT == S_IFREG && name.hasSuffix(".o") {
                files.append(path)
            }
        }
        return files
    }

    /// Orders each module's dependencies depth first and rejects cycles, which no load order
    /// can satisfy.
    private mutating func computeDependencies() throws(ModuleDirectoryError) {
        var direct: [String: [String]] = [:]
        for module in modules {
            let needed = Set(module.undefined.compactMap { exporters[$0] }).subtracting([module.path])
            direct[module.path] = needed.sorted()
        }
        for module in modules {
            var loadOrder: [String] = []
            var visiting: [String] = []
            try Self.visit(module.path, direct: direct, visiting: &visiting, loadOrder: &loadOrder)
            dependencies[module.path] = Array(loadOrder.dropLast().reversed())
        }
    }

    /// Appends `path` after everything it needs (depth-first post-order).
    private static func visit(_ path: String, direct: [String: [String]], visiting: inout [String],
                              loadOrder: inout [String]) throws(ModuleDirectoryError) {
        if loadOrder.contains(path) { return }
        if let start = visiting.firstIndex(of: path) {
            let cycle = visiting[start...] + [path]
            throw ModuleDirectoryError("dependency cycle: \(cycle.joined(separator: " -> ")); no load order exists")
        }
        visiting.append(path)
        for dependency in direct[path] ?? [] {
            try visit(dependency, direct: direct, visiting: &visiting, loadOrder: &loadOrder)
        }
        visiting.removeLast()
        loadOrder.append(path)
    }

    // MARK: Index files

    /// `modules.dep`: `path: dependency...`, one line per module.
    public var modulesDep: String {
        modules.map { module in
            ([module.path + ":"] + (dependencies[module.path] ?? [])).joined(separator: " ") + "\n"
        }.joined()
    }

    /// `modules.symbols`: `alias symbol:NAME MODULE`, sorted by symbol.
    public var modulesSymbols: String {
        let names = Dictionary(uniqueKeysWithValues: modules.map { ($0.path, $0.name) })
        return "# Symbols exported by the modules of this directory; written by modkit depmod.\n"
            + exporters.sorted { $0.key < $1.key }.map { "alias symbol:\($0.key) \(names[$0.value]!)\n" }.joined()
    }

    /// `modules.alias`: `alias PATTERN MODULE` for each `MODULE_ALIAS`.
    public var modulesAlias: String {
        "# Aliases declared by the modules of this directory; written by modkit depmod.\n"
            + modules.flatMap { module in module.aliases.map { "alias \($0) \(module.name)\n" } }.joined()
    }

    /// Writes the three index files into the directory, each through a temporary file renamed
    /// into place, so a reader never sees half a file.
    public func write() throws(ModuleDirectoryError) {
        for (name, text) in [("modules.dep", modulesDep), ("modules.symbols", modulesSymbols), ("modules.alias", modulesAlias)] {
            try Self.writeAtomically(directory + "/" + name, text)
        }
    }

    static func writeAtomically(_ path: String, _ text: String) throws(ModuleDirectoryError) {
        let temporary = path + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw ModuleDirectoryError("cannot write '\(temporary)': \(Errno(errno))") }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                let error = Errno(errno)
                close(descriptor)
                unlink(temporary)
                throw ModuleDirectoryError("cannot write '\(temporary)': \(error)")
            }
            offset += written
        }
        close(descriptor)
        guard rename(temporary, path) == 0 else {
            let error = Errno(errno)
            unlink(temporary)
            throw ModuleDirectoryError("cannot rename '\(temporary)' to '\(path)': \(error)")
        }
    }
}
