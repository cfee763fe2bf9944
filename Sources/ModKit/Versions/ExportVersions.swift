import CModKit

/// An `EXPORT_SYMBOL` entry of a compiled, not yet linked object.
struct DeclaredExport {
    /// The name other modules bind, from the export's string.
    var name: String
    /// The object's symbol that the entry points to; differs from `name` for a C++ function
    /// that is not `extern "C"`.
    var symbol: String
    var gplOnly: Bool
    var namespace: String
}

/// Finds the exports of compiled objects and computes their version CRCs from DWARF.
enum ExportVersions {
    /// Reads the `.modkit.ksymtab` entries of an object through their relocations.
    static func declaredExports(in object: ObjectFile) throws(BuildError) -> [DeclaredExport] {
        guard let table = object.sectionIndex(named: ".modkit.ksymtab") else { return [] }
        let stride = MemoryLayout<modkit_ksym>.stride
        let fieldOffsets = (address: MemoryLayout<modkit_ksym>.offset(of: \.addr)!, name: MemoryLayout<modkit_ksym>.offset(of: \.name)!,
                            namespace: MemoryLayout<modkit_ksym>.offset(of: \.ns)!, flags: MemoryLayout<modkit_ksym>.offset(of: \.flags)!)
        let section = object.sections[table]
        guard section.size % stride == 0 else {
            throw BuildError("\(object.name):(.modkit.ksymtab): size \(section.size) is not a multiple of \(stride) bytes; the object was not built with this version's <modkit/module.h>")
        }
        var exports = Array(repeating: DeclaredExport(name: "", symbol: "", gplOnly: false, namespace: ""), count: section.size / stride)
        let contents = object.contents(of: table)
        for index in exports.indices {
            let flags = contents.loadUnaligned(fromByteOffset: index * stride + fieldOffsets.flags, as: UInt.self)
            exports[index].gplOnly = flags & UInt(MODKIT_KSYM_GPL_ONLY) != 0
        }
        for relocationSection in object.relocationSections where relocationSection.target == table {
            for relocation in relocationSection.relocations {
                let index = Int(relocation.offset) / stride
                let field = Int(relocation.offset) % stride
                let symbol = object.symbols[relocation.symbolIndex]
                switch field {
                case fieldOffsets.address:
                    exports[index].symbol = object.symbolName(relocation.symbolIndex)
                case fieldOffsets.name, fieldOffsets.namespace:
                    let text = string(in: object, section: Int(symbol.sectionIndex), at: Int(symbol.value) + Int(relocation.addend))
                    if field == fieldOffsets.name { exports[index].name = text } else { exports[index].namespace = text }
                default:
                    continue
                }
            }
        }
        for export in exports where export.name.isEmpty || export.symbol.isEmpty {
            throw BuildError("\(object.name):(.modkit.ksymtab): an export entry has no name or no symbol; export with EXPORT_SYMBOL from <modkit/module.h>")
        }
        return exports
    }

    private static func string(in object: ObjectFile, section: Int, at offset: Int) -> String {
        guard section < object.sections.count else { return "" }
        let bytes = object.contents(of: section)
        guard offset >= 0, offset < bytes.count else { return "" }
        let end = bytes[offset...].firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[offset ..< end], as: UTF8.self)
    }

    /// Returns the version CRC of each export, by exported name, from an object of the same
    /// source compiled with `-g`.
    static func crcs(of exports: [DeclaredExport], debugObject: ObjectFile, source: String) throws(BuildError) -> [String: UInt32] {
        let dwarf: DWARFReader
        do {
            dwarf = try DWARFReader(object: debugObject)
        } catch {
            throw BuildError("\(source): cannot read the debugging information: \(error)")
        }
        var result: [String: UInt32] = [:]
        for export in exports {
            var signature = TypeSignature(dwarf: dwarf)
            guard let entry = signature.entry(forSymbol: export.symbol) else {
                throw BuildError("\(source): no debugging information for exported symbol \(export.symbol); export only functions and variables defined in this file")
            }
            result[export.name] = CRC32.checksum(signature.text(of: entry))
        }
        return result
    }

    /// Returns the text that the CRC of `symbol` hashes, or nil when the object does not
    /// describe it.
    static func signatureText(symbol: String, debugObject: ObjectFile) throws(BuildError) -> String? {
        do {
            var signature = TypeSignature(dwarf: try DWARFReader(object: debugObject))
            return signature.entry(forSymbol: symbol).map { signature.text(of: $0) }
        } catch {
            throw BuildError("\(debugObject.name): cannot read the debugging information: \(error)")
        }
    }
}
