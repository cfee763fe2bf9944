/// The `.modinfo` strings of a module (`license=GPL`, `author=...`), in file order.
public struct ModuleInfo: Sendable, Equatable {
    public var entries: [(key: String, value: String)]

    public init(entries: [(key: String, value: String)] = []) {
        self.entries = entries
    }

    /// Reads `.modinfo` from every object, which needs no relocation.
    public init(objects: [ObjectFile]) {
        entries = []
        for object in objects {
            for section in object.sections where section.name == ".modinfo" && section.hasFileContents {
                let bytes = object.contents(of: section.index)
                for chunk in bytes.split(separator: 0, omittingEmptySubsequences: true) {
                    let text = String(decoding: chunk, as: UTF8.self)
                    guard let equals = text.firstIndex(of: "=") else { continue }
                    entries.append((String(text[..<equals]), String(text[text.index(after: equals)...])))
                }
            }
        }
    }

    /// The first value of `key`.
    public subscript(key: String) -> String? {
        entries.first { $0.key == key }?.value
    }

    /// Every value of `key`, such as each `alias`.
    public func values(_ key: String) -> [String] {
        entries.filter { $0.key == key }.map(\.value)
    }

    public static func == (lhs: ModuleInfo, rhs: ModuleInfo) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.key == $1.key && $0.value == $1.value }
    }
}

extension ModuleInfo {
    /// The module name: `name=` from the metadata, else the first file's base name without its
    /// extension. As in Linux, `-` becomes `_`.
    static func moduleName(info: ModuleInfo, firstFile: String) -> String {
        if let name = info["name"], !name.isEmpty { return name.replacingDashes() }
        var base = Substring(firstFile.split(separator: "/").last ?? Substring(firstFile))
        if let dot = base.lastIndex(of: "."), dot != base.startIndex { base = base[..<dot] }
        return String(base).replacingDashes()
    }
}

extension String {
    func replacingDashes() -> String {
        String(map { $0 == "-" ? "_" : $0 })
    }
}
