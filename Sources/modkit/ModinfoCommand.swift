import Glibc
import ModKit

/// `modkit modinfo`: prints the `.modinfo` fields of module files, without a daemon.
struct ModinfoCommand: Command {
    static let name = "modinfo"
    static let summary = "print the information fields of a module file"
    static let usage = "modkit modinfo [-F FIELD] [--module-dir DIR] FILE|NAME..."
    static let discussion = """
        Prints filename, name, the module's MODULE_LICENSE, MODULE_AUTHOR,
        MODULE_DESCRIPTION, MODULE_VERSION and MODULE_ALIAS values, its other .modinfo
        fields, depends (from modules.dep beside the file), vermagic (the module ABI
        version it was built for), for a signed file sig_id, signer, sig_key and
        sig_hashalgo, and parm, one 'key:  value' line each with the key padded to 16
        columns. With -F only the values of FIELD are
        printed, one per line.

        An argument that contains '/' or ends in '.o' is a file. Otherwise it is a module name
        or alias, looked up in the module directory's modules.dep and modules.alias (written
        by 'modkit depmod') or as DIR/NAME.o. The directory is --module-dir, else
        $MODKIT_MODULE_PATH, else the one the running daemon was given.
        """
    static let options = [
        OptionDefinition(long: "field", short: "F", valueName: "FIELD", help: "print only the values of FIELD"),
        OptionDefinition(long: "module-dir", valueName: "DIR", help: "look up module names in DIR"),
    ]

    let targets: [String]
    let field: String?
    let moduleDirectory: String?

    init(arguments: ParsedArguments) throws(UsageError) {
        targets = arguments.positionals + arguments.passthrough
        guard !targets.isEmpty else { throw UsageError("missing module file or name") }
        field = arguments.value("field")
        moduleDirectory = arguments.value("module-dir")
    }

    func run() -> Int32 {
        var status = ExitStatus.success
        for target in targets {
            do throws(ToolFailure) {
                let path = try resolve(target)
                print(try describe(file: path), terminator: "")
            } catch {
                status = Self.report(error)
            }
        }
        return status
    }

    private func resolve(_ target: String) throws(ToolFailure) -> String {
        if target.contains("/") || target.hasSuffix(".o") {
            guard access(target, F_OK) == 0 else { throw ToolFailure("Module \(target) not found.") }
            return absolutePath(target)
        }
        guard let directory = ModuleDirectoryChoice.resolve(option: moduleDirectory) else {
            throw ToolFailure(["Module \(target) not found.",
                               "hint: pass --module-dir DIR or set MODKIT_MODULE_PATH to look up module names"])
        }
        let name = target.normalizedModuleName
        if let database = try? ModuleDatabase(directory: directory) {
            if let file = database.file(ofModule: name) { return file }
            if let aliased = database.modules(matchingAlias: name).first, let file = database.file(ofModule: aliased) { return file }
        }
        let candidate = directory + "/" + target + ".o"
        guard access(candidate, F_OK) == 0 else { throw ToolFailure("Module \(target) not found.") }
        return candidate
    }

    /// Returns the lines modinfo prints for one file.
    private func describe(file: String) throws(ToolFailure) -> String {
        let info: ModuleInfo
        let signature: ModuleSignature?
        do throws(LoadError) {
            let image = try ObjectImage(contentsOf: file)
            signature = try image.signature()
            info = ModuleInfo(objects: [try ObjectFile(image.withoutSignature())])
        } catch {
            throw ToolFailure(["could not get modinfo from '\(moduleName(fromArgument: file))': Invalid module format", "\(error)"])
        }
        let name = info["name"] ?? ModuleDatabase.moduleName(ofPath: file)
        let depends = info["depends"] ?? Self.dependencies(of: file).joined(separator: ",")
        var lines: [(key: String, value: String)] = [("filename", file), ("name", name)]
        for key in Self.leadingKeys {
            lines += info.values(key).map { (key, $0) }
        }
        lines += info.entries.filter { !Self.leadingKeys.contains($0.key) && !Self.placedKeys.contains($0.key) }
        lines.append(("depends", depends))
        // Every object that includes <modkit/module.h> records the same vermagic; show each
        // distinct value once, after depends as Linux's modinfo does.
        var magics: [String] = []
        for magic in info.values("vermagic") where !magics.contains(magic) { magics.append(magic) }
        lines += magics.map { ("vermagic", $0) }
        if let signature {
            lines += try Self.signatureFields(signature, file: file)
        }
        lines += Self.parameters(info).map { ("parm", $0) }

        if let field {
            return lines.filter { $0.key == field }.map { $0.value + "\n" }.joined()
        }
        return lines.map { ($0.key + ":").padding(to: 16) + $0.value + "\n" }.joined()
    }

    /// kmod's fields for a PKCS#7 signature: `sig_id`, `signer`, `sig_key` and `sig_hashalgo`.
    private static func signatureFields(_ signature: ModuleSignature, file: String) throws(ToolFailure) -> [(key: String, value: String)] {
        do {
            let signer = try signature.signer()
            return [("sig_id", "PKCS#7"), ("signer", signer.signer), ("sig_key", signer.keyIdentifierText),
                    ("sig_hashalgo", signer.hashAlgorithm)]
        } catch {
            throw ToolFailure("could not read the signature of '\(file)': \(error)")
        }
    }

    /// The fields printed right after filename and name, in this order; other fields follow
    /// in file order.
    static let leadingKeys = ["license", "author", "description", "version", "alias"]
    /// Fields printed in a place of their own.
    static let placedKeys = ["name", "depends", "vermagic", "parm", "parmtype"]

    /// `name:description (type)` for each parameter, from the `parm` and `parmtype` entries.
    static func parameters(_ info: ModuleInfo) -> [String] {
        var order: [String] = []
        var descriptions: [String: String] = [:]
        var types: [String: String] = [:]
        for (key, value) in info.entries where key == "parm" || key == "parmtype" {
            let parts = value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            let text = parts.count > 1 ? String(parts[1]) : ""
            if !order.contains(name) { order.append(name) }
            if key == "parm" { descriptions[name] = text } else { types[name] = text }
        }
        // Compilers emit .modinfo strings in different orders, so parameters go by name.
        return order.sorted().map { name in
            name + ":" + (descriptions[name] ?? "") + (types[name].map { " (\($0))" } ?? "")
        }
    }

    /// Returns the module names the file needs, from modules.dep beside it.
    private static func dependencies(of file: String) -> [String] {
        let slash = file.lastIndex(of: "/")!
        let directory = String(file[..<slash])
        guard let database = try? ModuleDatabase(directory: directory) else { return [] }
        let name = ModuleDatabase.moduleName(ofPath: file)
        return (database.dependencies[name] ?? []).map(ModuleDatabase.moduleName(ofPath:))
    }
}

/// The module directory a tool uses: its option, else `MODKIT_MODULE_PATH`, else the running
/// daemon's `--module-dir`.
enum ModuleDirectoryChoice {
    static func resolve(option: String?) -> String? {
        if let option { return absolutePath(option) }
        if let variable = DaemonSocketPath.environment("MODKIT_MODULE_PATH") { return absolutePath(variable) }
        return DaemonAccess.daemonInfoIfRunning()?.moduleDirectory
    }
}

/// `path` made absolute against the working directory.
func absolutePath(_ path: String) -> String {
    guard !path.hasPrefix("/"), let directory = getcwd(nil, 0) else { return path }
    defer { free(directory) }
    var result = String(cString: directory) + "/" + path
    while result.hasPrefix("//") { result.removeFirst() }
    if result.hasSuffix("/.") { result.removeLast(2) }
    return result.replacingOccurrencesOfDotSlash()
}

extension String {
    /// Drops `./` path components, which getcwd-based joining produces from `./file.o`.
    func replacingOccurrencesOfDotSlash() -> String {
        split(separator: "/", omittingEmptySubsequences: false).filter { $0 != "." }.joined(separator: "/")
    }
}
