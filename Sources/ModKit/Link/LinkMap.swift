/// The addresses of a link at fixed addresses: where each section, the GOT, the branch stubs,
/// the `struct module` and each COMMON symbol go, and the address of each undefined symbol.
///
/// `modkit link` reads a map to take addresses from it and writes the complete map back. The
/// text format is one line per item; docs/link-map.md describes it.
public struct LinkMap: Sendable, Equatable {
    /// A loaded section of one object.
    public struct Section: Sendable, Equatable {
        public var address: UInt64
        public var size: Int
        /// The object file, as named on the command line.
        public var file: String
        /// The section's index in the object's section table.
        public var index: Int
        public var name: String
    }

    /// A GOT entry or a branch stub, and the symbol it serves.
    public struct Entry: Sendable, Equatable {
        public var address: UInt64
        public var file: String
        public var symbol: String
    }

    /// An address with the size of what is placed there.
    public struct Span: Sendable, Equatable {
        public var address: UInt64
        public var size: Int
    }

    public var target: Machine?
    /// The address of the image's first byte.
    public var base: UInt64?
    /// The size of the image in bytes; written, never read.
    public var size: Int?
    public var sections: [Section] = []
    public var got: Span?
    /// Written, never read: the GOT slots follow from the relocations.
    public var gotEntries: [Entry] = []
    public var stubs: Span?
    /// Written, never read: the stubs follow from the relocations.
    public var stubEntries: [Entry] = []
    public var moduleStruct: Span?
    /// COMMON symbols, by name.
    public var commons: [String: Span] = [:]
    /// Undefined symbols, by name.
    public var symbols: [String: UInt64] = [:]

    public init() {}

    /// Parses the text of a map file named `file`, for error messages.
    public init(parsing text: String, file: String) throws(LoadError) {
        for (lineIndex, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard let keyword = words.first else { continue }
            var parser = LineParser(words: words, file: file, line: lineIndex + 1)
            try parse(keyword, &parser)
        }
    }

    private mutating func parse(_ keyword: String, _ line: inout LineParser) throws(LoadError) {
        switch keyword {
        case "target":
            let name = try line.word("architecture")
            guard let machine = Machine(rawValue: name) else {
                throw line.error("unknown target '\(name)'; expected x86_64 or aarch64")
            }
            target = machine
        case "base":
            base = try line.address()
        case "size":
            size = try line.size()
        case "section":
            let address = try line.address(), size = try line.size(), file = try line.word("object file")
            let index = try line.size(what: "section index")
            sections.append(Section(address: address, size: size, file: file, index: index, name: try line.word("section name")))
        case "got":
            got = Span(address: try line.address(), size: try line.size())
        case "got-entry":
            gotEntries.append(Entry(address: try line.address(), file: try line.word("object file"), symbol: try line.word("symbol")))
        case "stubs":
            stubs = Span(address: try line.address(), size: try line.size())
        case "stub":
            stubEntries.append(Entry(address: try line.address(), file: try line.word("object file"), symbol: try line.word("symbol")))
        case "module":
            moduleStruct = Span(address: try line.address(), size: try line.size())
        case "common":
            let span = Span(address: try line.address(), size: try line.size())
            commons[try line.word("symbol")] = span
        case "symbol":
            let address = try line.address()
            symbols[try line.word("symbol")] = address
        default:
            throw line.error("unknown line '\(keyword)'; expected target, base, size, section, got, got-entry, stubs, stub, module, common or symbol")
        }
        try line.end()
    }

    /// The map as text, one line per item, in address order within each kind.
    public var text: String {
        var lines = ["# modkit link map: addresses are hexadecimal; see docs/link-map.md"]
        if let target { lines.append("target \(target.rawValue)") }
        if let base { lines.append("base \(hex(base))") }
        if let size { lines.append("size \(hex(UInt64(size)))") }
        for section in sections.sorted(by: { $0.address < $1.address }) {
            lines.append("section \(hex(section.address)) \(hex(UInt64(section.size))) \(section.file) \(section.index) \(section.name)")
        }
        if let got { lines.append("got \(hex(got.address)) \(hex(UInt64(got.size)))") }
        for entry in gotEntries { lines.append("got-entry \(hex(entry.address)) \(entry.file) \(entry.symbol)") }
        if let stubs { lines.append("stubs \(hex(stubs.address)) \(hex(UInt64(stubs.size)))") }
        for entry in stubEntries { lines.append("stub \(hex(entry.address)) \(entry.file) \(entry.symbol)") }
        if let moduleStruct { lines.append("module \(hex(moduleStruct.address)) \(hex(UInt64(moduleStruct.size)))") }
        for (name, span) in commons.sorted(by: { $0.value.address < $1.value.address }) {
            lines.append("common \(hex(span.address)) \(hex(UInt64(span.size))) \(name)")
        }
        for (name, address) in symbols.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }) {
            lines.append("symbol \(hex(address)) \(name)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func hex(_ value: UInt64) -> String {
        "0x" + String(value, radix: 16)
    }
}

/// The words of one map line, consumed left to right.
private struct LineParser {
    var words: [String]
    var file: String
    var line: Int
    var next = 1

    init(words: [String], file: String, line: Int) {
        self.words = words
        self.file = file
        self.line = line
    }

    func error(_ message: String) -> LoadError {
        LoadError(.badLinkMap, file: "\(file):\(line)", message)
    }

    mutating func word(_ what: String) throws(LoadError) -> String {
        guard next < words.count else {
            throw error("missing \(what) after '\(words[0])'")
        }
        defer { next += 1 }
        return words[next]
    }

    mutating func address() throws(LoadError) -> UInt64 {
        let text = try word("address")
        guard text.hasPrefix("0x"), let value = UInt64(text.dropFirst(2), radix: 16) else {
            throw error("invalid address '\(text)'; expected a hexadecimal number such as 0x10000000")
        }
        return value
    }

    /// Reads a size or index: hexadecimal with `0x`, otherwise decimal.
    mutating func size(what: String = "size") throws(LoadError) -> Int {
        let text = try word(what)
        let value = text.hasPrefix("0x") ? Int(text.dropFirst(2), radix: 16) : Int(text)
        guard let value, value >= 0, value < 1 << 40 else {
            throw error("invalid \(what) '\(text)'; expected a non-negative number")
        }
        return value
    }

    func end() throws(LoadError) {
        guard next >= words.count else {
            throw error("unexpected '\(words[next])' at the end of the '\(words[0])' line")
        }
    }
}
