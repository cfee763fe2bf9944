/// One line of a Module.symvers file: an exported symbol with its version CRC.
public struct SymbolVersionRecord: Sendable, Equatable {
    public var crc: UInt32
    public var symbol: String
    /// The exporting module, or `modkit` for the host API.
    public var module: String
    public var gplOnly: Bool
    /// The export's namespace, empty for the global one.
    public var namespace: String

    public init(crc: UInt32, symbol: String, module: String, gplOnly: Bool, namespace: String = "") {
        self.crc = crc
        self.symbol = symbol
        self.module = module
        self.gplOnly = gplOnly
        self.namespace = namespace
    }

    /// The line in Linux's format: `0xCRC<TAB>symbol<TAB>module<TAB>EXPORT_SYMBOL[_GPL]<TAB>namespace`.
    public var line: String {
        [VersionSection.hex(crc), symbol, module, gplOnly ? "EXPORT_SYMBOL_GPL" : "EXPORT_SYMBOL", namespace].joined(separator: "\t")
    }
}

/// A Module.symvers file: the exported symbols of one or more modules with their CRCs, which
/// `modkit build` writes beside a module and reads back to version another module's imports.
public struct SymbolVersionFile: Sendable, Equatable {
    public var records: [SymbolVersionRecord]

    public init(records: [SymbolVersionRecord] = []) {
        self.records = records
    }

    /// Parses the text of a Module.symvers file; `file` names it in errors.
    public init(text: String, file: String) throws(BuildError) {
        records = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 4 || fields.count == 5, let crc = VersionSection.parseCRC(fields[0]), !fields[1].isEmpty,
                  fields[3] == "EXPORT_SYMBOL" || fields[3] == "EXPORT_SYMBOL_GPL" else {
                throw BuildError("\(file):\(number + 1): invalid Module.symvers line '\(line)'; expected 0xCRC, symbol, module, EXPORT_SYMBOL or EXPORT_SYMBOL_GPL and a namespace, separated by tabs")
            }
            records.append(SymbolVersionRecord(crc: crc, symbol: String(fields[1]), module: String(fields[2]),
                                               gplOnly: fields[3] == "EXPORT_SYMBOL_GPL", namespace: fields.count == 5 ? String(fields[4]) : ""))
        }
    }

    /// One line per record, sorted by symbol as Linux's modpost writes them.
    public var text: String {
        records.sorted { ($0.symbol, $0.module) < ($1.symbol, $1.module) }.map { $0.line + "\n" }.joined()
    }
}

/// A failure of `modkit build`, with a message that names the file and what to do.
public struct BuildError: Error, CustomStringConvertible, Sendable {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
