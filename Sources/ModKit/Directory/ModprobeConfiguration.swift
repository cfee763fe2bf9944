import Glibc

/// Settings in the format of modprobe.d(5): `alias`, `options`, `blacklist` and `softdep`.
///
/// Module names are normalized with `-` as `_`. `install` and `remove` (shell commands) are not
/// supported and, like unknown commands, produce a warning and are skipped.
public struct ModprobeConfiguration: Sendable {
    /// `alias PATTERN MODULE`, in file order; patterns use shell wildcards.
    public private(set) var aliases: [(pattern: String, module: String)] = []
    /// `options MODULE PARAM=VALUE...`, joined per module in file order.
    public private(set) var options: [String: [String]] = [:]
    /// Modules that an alias never loads; loading them by name still works.
    public private(set) var blacklist: Set<String> = []
    /// `softdep MODULE pre: A B post: C`.
    public private(set) var softDependencies: [String: (pre: [String], post: [String])] = [:]
    /// `FILE:LINE: problem` for each line that was skipped.
    public private(set) var warnings: [String] = []

    public init() {}

    /// Reads a file, or every `*.conf` file of a directory in name order.
    public init(contentsOf path: String) throws(ModuleDirectoryError) {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw ModuleDirectoryError("cannot read configuration '\(path)': \(Errno(errno))")
        }
        var files = [path]
        if status.st_mode & S_IFMT == S_IFDIR {
            files = try Self.configurationFiles(in: path)
        }
        for file in files {
            guard let text = ModuleDatabase.readText(file) else {
                throw ModuleDirectoryError("cannot read configuration '\(file)': \(Errno(errno))")
            }
            parse(text, file: file)
        }
    }

    private static func configurationFiles(in directory: String) throws(ModuleDirectoryError) -> [String] {
        guard let stream = opendir(directory) else {
            throw ModuleDirectoryError("cannot read configuration directory '\(directory)': \(Errno(errno))")
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasSuffix(".conf") && !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted().map { directory + "/" + $0 }
    }

    /// Adds the commands of `text`; `file` names it in warnings. A line that ends with `\`
    /// continues on the next.
    public mutating func parse(_ text: String, file: String) {
        var pending = ""
        var pendingLine = 0
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if pending.isEmpty { pendingLine = index + 1 }
            if rawLine.hasSuffix("\\") {
                pending += rawLine.dropLast() + " "
                continue
            }
            let line = pending + rawLine
            pending = ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let command = words.first, !command.hasPrefix("#") else { continue }
            parseCommand(command, Array(words.dropFirst()), location: "\(file):\(pendingLine)")
        }
    }

    private mutating func parseCommand(_ command: String, _ arguments: [String], location: String) {
        switch command {
        case "alias":
            guard arguments.count == 2 else { return warn(location, "'alias' needs a pattern and a module name") }
            aliases.append((arguments[0].normalizedModuleName, arguments[1].normalizedModuleName))
        case "options":
            guard arguments.count >= 2 else { return warn(location, "'options' needs a module name and at least one option") }
            options[arguments[0].normalizedModuleName, default: []] += arguments.dropFirst()
        case "blacklist":
            guard arguments.count == 1 else { return warn(location, "'blacklist' needs one module name") }
            blacklist.insert(arguments[0].normalizedModuleName)
        case "softdep":
            parseSoftDependency(arguments, location: location)
        case "install", "remove":
            warn(location, "'\(command)' runs a shell command, which modkit does not support; line ignored")
        default:
            warn(location, "unknown command '\(command)'; line ignored")
        }
    }

    private mutating func parseSoftDependency(_ arguments: [String], location: String) {
        guard let module = arguments.first else { return warn(location, "'softdep' needs a module name") }
        var pre: [String] = [], post: [String] = []
        var section: String?
        for word in arguments.dropFirst() {
            if word == "pre:" || word == "post:" {
                section = word
            } else if section == "pre:" {
                pre.append(word.normalizedModuleName)
            } else if section == "post:" {
                post.append(word.normalizedModuleName)
            } else {
                return warn(location, "'softdep' expects 'pre:' or 'post:' before '\(word)'")
            }
        }
        let name = module.normalizedModuleName
        let existing = softDependencies[name] ?? ([], [])
        softDependencies[name] = (existing.pre + pre, existing.post + post)
    }

    private mutating func warn(_ location: String, _ message: String) {
        warnings.append("\(location): \(message)")
    }

    /// Returns the modules an `alias` line maps `name` to, in file order.
    public func modules(matchingAlias name: String) -> [String] {
        var found: [String] = []
        for alias in aliases where fnmatch(alias.pattern, name, 0) == 0 && !found.contains(alias.module) {
            found.append(alias.module)
        }
        return found
    }
}

extension String {
    /// The module name with `-` as `_`, as the loader names modules.
    public var normalizedModuleName: String {
        replacingDashes()
    }
}
