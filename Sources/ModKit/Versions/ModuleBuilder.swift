import Glibc

/// Builds a module the way Linux's kbuild and modpost do. It compiles the sources, computes
/// the version CRC of every export and generates the version tables in a small C file. Then
/// it links everything into one relocatable object with `ld -r` and records the exports in a
/// Module.symvers file beside it.
public struct ModuleBuilder {
    public var sources: [String]
    /// The output object; by default NAME.o in the working directory, after the first source.
    public var output: String?
    /// Module.symvers files of the modules this one is built against.
    public var symversFiles: [String] = []
    /// The flags every module needs, as `modkit cflags` prints them.
    public var moduleFlags: [String]
    /// Further compiler flags for the sources, such as `-O2` or `-DDEBUG`.
    public var extraFlags: [String] = []

    public init(sources: [String], moduleFlags: [String]) {
        self.sources = sources
        self.moduleFlags = moduleFlags
    }

    /// The files and symbols of a finished build.
    public struct Result: Sendable {
        public var output: String
        public var moduleName: String
        public var symversFile: String
        /// The module's exports with their CRCs.
        public var exports: [SymbolVersionRecord]
        /// The imported symbols the module records a CRC for.
        public var versionedImports: [String: UInt32]
        /// Imported symbols that no Module.symvers describes and this process does not define.
        public var unversionedImports: [String]
    }

    public func build() throws(BuildError) -> Result {
        try checkSources()
        let output = self.output ?? Self.defaultOutput(for: sources[0])
        let directory = try BuildDirectory()

        var objects: [ObjectFile] = []
        var exports: [(export: DeclaredExport, crc: UInt32)] = []
        for (index, source) in sources.enumerated() {
            let objectPath = directory.file("\(index)-\(Self.baseName(source)).o")
            try BuildProcess.check([Self.compiler(for: source)] + moduleFlags + extraFlags + ["-c", source, "-o", objectPath],
                                   what: "compiling \(source)")
            let object = try Self.parse(objectPath, as: source)
            objects.append(object)
            exports += try versionedExports(of: object, source: source, index: index, directory: directory)
        }

        let moduleName = ModuleInfo.moduleName(info: ModuleInfo(objects: objects), firstFile: output)
        let known = try knownVersions()
        let (imports, unversioned) = Self.imports(of: objects, known: known)

        let metadataSource = directory.file("\(moduleName).mod.c")
        let hasVersionMagic = !ModuleInfo(objects: objects).values("vermagic").isEmpty
        try TextFile.write(Self.metadataSource(module: moduleName, imports: imports, exports: exports.map { ($0.export.name, $0.crc) },
                                                addsVersionMagic: !hasVersionMagic), to: metadataSource)
        let metadataObject = directory.file("\(moduleName).mod.o")
        try BuildProcess.check([BuildProcess.tool("CC", default: "cc")] + moduleFlags + ["-c", metadataSource, "-o", metadataObject],
                               what: "compiling the generated \(moduleName).mod.c")
        let linked = objects.map(\.name) + [metadataObject]
        try BuildProcess.check([BuildProcess.tool("LD", default: "ld"), "-r", "-o", output] + linked, what: "linking \(output)")

        let records = exports.map {
            SymbolVersionRecord(crc: $0.crc, symbol: $0.export.name, module: moduleName, gplOnly: $0.export.gplOnly, namespace: $0.export.namespace)
        }
        let symversFile = Self.directory(of: output) + "/Module.symvers"
        try Self.update(symversFile, module: moduleName, records: records)
        return Result(output: output, moduleName: moduleName, symversFile: symversFile, exports: records,
                      versionedImports: imports, unversionedImports: unversioned)
    }

    // MARK: Steps

    private func checkSources() throws(BuildError) {
        guard !sources.isEmpty else { throw BuildError("no source files given") }
        for source in sources {
            guard access(source, R_OK) == 0 else {
                throw BuildError("cannot read source file \(source): \(String(cString: strerror(errno)))")
            }
            guard Self.language(of: source) != nil else {
                throw BuildError("\(source): unknown kind of source; expected .c, .cc, .cpp, .cxx, .C or .S")
            }
        }
    }

    /// Compiles a source with exports a second time with `-g` and computes their CRCs.
    private func versionedExports(of object: ObjectFile, source: String, index: Int,
                                  directory: BuildDirectory) throws(BuildError) -> [(export: DeclaredExport, crc: UInt32)] {
        let declared = try ExportVersions.declaredExports(in: object)
        guard !declared.isEmpty else { return [] }
        let debugPath = directory.file("\(index)-\(Self.baseName(source)).debug.o")
        let compiler = Self.compiler(for: source)
        try BuildProcess.check([compiler] + moduleFlags + extraFlags + Self.debugFlags + Self.classDebugFlags(source, compiler: compiler, directory: directory)
                               + ["-c", source, "-o", debugPath],
                               what: "compiling \(source) with debugging information for symbol versions")
        let crcs = try ExportVersions.crcs(of: declared, debugObject: try Self.parse(debugPath, as: source), source: source)
        return declared.map { ($0, crcs[$0.name]!) }
    }

    /// The flags of the compilation that symbol versions read: DWARF 4 in the object itself,
    /// which gcc and clang write with the same forms.
    static let debugFlags = ["-g", "-gdwarf-4", "-gno-split-dwarf", "-fno-debug-types-section"]

    /// Returns the flags that make the compiler describe every C++ class a unit uses in full.
    /// By default gcc and clang describe a class with a vtable, or an explicit instantiation
    /// such as std::string, only in the unit that emits it, and leave it opaque elsewhere.
    private static func classDebugFlags(_ source: String, compiler: String, directory: BuildDirectory) -> [String] {
        guard language(of: source) == .cPlusPlus else { return [] }
        return BuildProcess.isClang(compiler, in: directory) ? ["-fstandalone-debug"] : ["-femit-class-debug-always"]
    }

    /// Returns the CRC of each symbol in the host API's table and the files given. The first
    /// record of a symbol wins.
    private func knownVersions() throws(BuildError) -> [String: UInt32] {
        var known: [String: UInt32] = [:]
        var files = [try HostSymbolVersions.file()]
        for path in symversFiles { files.append(try SymbolVersionFile(text: try TextFile.read(path), file: path)) }
        for file in files {
            for record in file.records where known[record.symbol] == nil { known[record.symbol] = record.crc }
        }
        return known
    }

    /// Splits the module's undefined symbols into those with a known version and those that
    /// neither a Module.symvers nor this process (its C library) defines, leaving out the
    /// symbols that the loader itself defines.
    static func imports(of objects: [ObjectFile], known: [String: UInt32]) -> (versioned: [String: UInt32], unversioned: [String]) {
        ProcessSymbols.revalidate()
        var defined: Set<String> = []
        var undefined: Set<String> = []
        for object in objects {
            for (index, symbol) in object.symbols.enumerated() where !symbol.isLocal {
                let name = object.symbolName(index)
                guard !name.isEmpty else { continue }
                if symbol.isUndefined { undefined.insert(name) } else { defined.insert(name) }
            }
        }
        var versioned: [String: UInt32] = [:]
        var unversioned: [String] = []
        for name in undefined.subtracting(defined).subtracting(["__this_module", "__dso_handle", "_GLOBAL_OFFSET_TABLE_"]).sorted() {
            if let crc = known[name] {
                versioned[name] = crc
            } else if ProcessSymbols.address(of: name) == nil {
                unversioned.append(name)
            }
        }
        return (versioned, unversioned)
    }

    /// The generated C file, like kbuild's NAME.mod.c: the import and export version tables,
    /// and the version magic of <modkit/module.h> when no source included the header.
    static func metadataSource(module: String, imports: [String: UInt32], exports: [(name: String, crc: UInt32)],
                               addsVersionMagic: Bool) -> String {
        func table(_ name: String, section: String, _ entries: [(name: String, crc: UInt32)]) -> String {
            var text = "static const char \(name)[]\n    __attribute__((used, section(\"\(section)\"), aligned(1))) =\n"
            for entry in entries.sorted(by: { $0.name < $1.name }) {
                text += "    \"\(cEscaped(VersionSection.entry(name: entry.name, crc: entry.crc)))\\0\"\n"
            }
            return text + "    \"\";\n"
        }
        return """
            /* Generated by modkit build for module \(module). Do not edit. */
            \(addsVersionMagic ? "#include <modkit/module.h>" : "")

            \(table("__modkit_versions", section: VersionSection.imports, imports.map { ($0.key, $0.value) }))
            \(table("__modkit_crcs", section: VersionSection.exports, exports))
            """
    }

    private static func cEscaped(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            let character = Character(Unicode.Scalar(byte))
            if character.isLetter && byte < 0x80 || character.isNumber && byte < 0x80 || " _.$".contains(character) {
                result.append(character)
            } else {
                result += "\\" + String(byte, radix: 8)
            }
        }
        return result
    }

    /// Replaces the records of `module` in a Module.symvers file, keeping other modules'.
    static func update(_ path: String, module: String, records: [SymbolVersionRecord]) throws(BuildError) {
        var file = SymbolVersionFile()
        if access(path, F_OK) == 0 {
            file = try SymbolVersionFile(text: try TextFile.read(path), file: path)
        } else if records.isEmpty {
            return
        }
        file.records.removeAll { $0.module == module }
        file.records += records
        try TextFile.write(file.text, to: path)
    }

    // MARK: Files

    private static func parse(_ path: String, as source: String) throws(BuildError) -> ObjectFile {
        do {
            return try ObjectFile(ObjectImage(contentsOf: path))
        } catch {
            throw BuildError("\(source): the compiled object is not a loadable module: \(error)")
        }
    }

    enum Language { case c, cPlusPlus, assembly }

    static func language(of source: String) -> Language? {
        guard let dot = source.lastIndex(of: "."), !source[dot...].contains("/") else { return nil }
        switch source[source.index(after: dot)...] {
        case "c": return .c
        case "cc", "cpp", "cxx", "C", "c++": return .cPlusPlus
        case "S", "s": return .assembly
        default: return nil
        }
    }

    /// `$CXX` or `c++` for C++ sources, else `$CC` or `cc`.
    static func compiler(for source: String) -> String {
        language(of: source) == .cPlusPlus ? BuildProcess.tool("CXX", default: "c++") : BuildProcess.tool("CC", default: "cc")
    }

    static func baseName(_ path: String) -> String {
        var base = Substring(path.split(separator: "/").last ?? Substring(path))
        if let dot = base.lastIndex(of: "."), dot != base.startIndex { base = base[..<dot] }
        return String(base)
    }

    static func defaultOutput(for source: String) -> String {
        baseName(source) + ".o"
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
