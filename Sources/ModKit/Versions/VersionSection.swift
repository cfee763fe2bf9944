/// The two sections that carry symbol versions inside a module. Both are NUL-terminated
/// `0xCRC NAME` strings, which need no relocation. `.modkit.versions` lists the CRC of each
/// imported symbol as the module was built (Linux's `__versions`), and `.modkit.crcs` the CRC
/// of each exported symbol (Linux's `__kcrctab`). `modkit build` writes both.
enum VersionSection {
    static let imports = ".modkit.versions"
    static let exports = ".modkit.crcs"

    /// Returns one entry without its terminating NUL: `0x1a2b3c4d printk`.
    static func entry(name: String, crc: UInt32) -> String {
        "\(hex(crc)) \(name)"
    }

    /// Returns a CRC as Module.symvers writes it: `0x` and eight lowercase hex digits.
    static func hex(_ crc: UInt32) -> String {
        let digits = String(crc, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// Parses `0x1a2b3c4d`, with exactly eight hex digits.
    static func parseCRC<S: StringProtocol>(_ text: S) -> UInt32? {
        guard text.count == 10, text.hasPrefix("0x") else { return nil }
        return UInt32(text.dropFirst(2), radix: 16)
    }

    /// Reads the section `name` of every object into one table, or returns nil when no object
    /// has one. A malformed entry or two CRCs for one symbol are errors.
    static func read(_ name: String, in objects: [ObjectFile]) throws(LoadError) -> [String: UInt32]? {
        var table: [String: UInt32]?
        for object in objects {
            for section in object.sections where section.name == name && section.hasFileContents {
                var entries = table ?? [:]
                var offset = 0
                for chunk in object.contents(of: section.index).split(separator: 0, omittingEmptySubsequences: false) {
                    defer { offset += chunk.count + 1 }
                    guard !chunk.isEmpty else { continue }
                    let text = String(decoding: chunk, as: UTF8.self)
                    let parts = text.split(separator: " ", omittingEmptySubsequences: false)
                    guard parts.count == 2, !parts[1].isEmpty, let crc = parseCRC(parts[0]) else {
                        throw LoadError(.badMetadata, file: object.name, section: name, offset: UInt64(offset),
                                        "invalid symbol version entry '\(text)'; expected '0xCRC NAME' with eight hex digits, as modkit build writes it")
                    }
                    let symbol = String(parts[1])
                    if let other = entries[symbol], other != crc {
                        throw LoadError(.badMetadata, file: object.name, section: name, offset: UInt64(offset), symbol: symbol,
                                        "symbol \(symbol) has two versions, \(hex(other)) and \(hex(crc)); rebuild the module with modkit build")
                    }
                    entries[symbol] = crc
                }
                table = entries
            }
        }
        return table
    }
}
