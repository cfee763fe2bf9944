import Glibc

/// The index files of a module directory as modprobe and modinfo read them: `modules.dep`,
/// `modules.alias` and `modules.symbols`, written by `modkit depmod`.
public struct ModuleDatabase: Sendable {
    public let directory: String
    /// Module name to its path relative to `directory`.
    public private(set) var paths: [String: String] = [:]
    /// Module name to the paths of every module it needs, in modules.dep order.
    public private(set) var dependencies: [String: [String]] = [:]
    /// `alias PATTERN MODULE` lines of modules.alias, in file order.
    public private(set) var aliases: [(pattern: String, module: String)] = []
    /// Exported symbol to module name, from modules.symbols.
    public private(set) var symbols: [String: String] = [:]

    /// Reads the index files. A missing modules.dep is an error that names the command to run.
    /// The other two files are optional.
    public init(directory: String) throws(ModuleDirectoryError) {
        self.directory = directory
        let depPath = directory + "/modules.dep"
        guard let depText = Self.readText(depPath) else {
            throw ModuleDirectoryError("\(depPath) not found or unreadable; run 'modkit depmod \(directory)' first")
        }
        for (number, line) in Self.lines(depText) {
            guard let colon = line.firstIndex(of: ":") else {
                throw ModuleDirectoryError("\(depPath):\(number): expected 'path: dependencies', found '\(line)'")
            }
            let path = String(line[..<colon]).trimmingSpaces()
            let name = Self.moduleName(ofPath: path)
            paths[name] = path
            dependencies[name] = line[line.index(after: colon)...].split(separator: " ").map(String.init)
        }
        for (_, line) in Self.lines(Self.readText(directory + "/modules.alias") ?? "") {
            let words = line.split(separator: " ")
            if words.count == 3 && words[0] == "alias" { aliases.append((String(words[1]), String(words[2]))) }
        }
        for (_, line) in Self.lines(Self.readText(directory + "/modules.symbols") ?? "") {
            let words = line.split(separator: " ")
            if words.count == 3 && words[0] == "alias" && words[1].hasPrefix("symbol:") {
                symbols[String(words[1].dropFirst("symbol:".count))] = String(words[2])
            }
        }
    }

    /// Returns the module name of a path in modules.dep: the file name without `.o`, `-` as `_`.
    public static func moduleName(ofPath path: String) -> String {
        ModuleInfo.moduleName(info: ModuleInfo(), firstFile: path)
    }

    /// Returns the absolute path of a module's file.
    public func file(ofModule name: String) -> String? {
        paths[name].map { $0.hasPrefix("/") ? $0 : directory + "/" + $0 }
    }

    /// Returns the modules of modules.alias whose pattern matches `name` (shell wildcards), in file
    /// order; `symbol:NAME` also finds the module that exports NAME.
    public func modules(matchingAlias name: String) -> [String] {
        var found: [String] = []
        for alias in aliases where fnmatch(alias.pattern, name, 0) == 0 && !found.contains(alias.module) {
            found.append(alias.module)
        }
        if found.isEmpty, name.hasPrefix("symbol:"), let module = symbols[String(name.dropFirst("symbol:".count))] {
            found.append(module)
        }
        return found
    }

    static func readText(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { return nil }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Non-empty lines that are not comments, with their 1-based numbers.
    static func lines(_ text: String) -> [(Int, Substring)] {
        var result: [(Int, Substring)] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            result.append((index + 1, trimmed))
        }
        return result
    }
}

extension String {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
