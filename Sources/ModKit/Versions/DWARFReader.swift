/// One debugging information entry of `.debug_info`, with the attributes that symbol
/// versions need.
struct DebugEntry {
    /// Offset from the start of `.debug_info`, which references use.
    var offset: Int
    var tag: UInt64
    var attributes: [UInt64: DebugValue] = [:]
    var children: [Int] = []
    /// Index of the parent entry, or nil for a unit's root.
    var parent: Int?
}

/// An attribute value, decoded from its form.
enum DebugValue {
    case unsigned(UInt64)
    case signed(Int64)
    /// A constant of a `DW_FORM_dataN` form, whose signedness comes from the type it describes.
    case data(UInt64, size: Int)
    case string(String)
    /// The offset of another entry in `.debug_info`.
    case reference(Int)
    case flag(Bool)
    case expression([UInt8])
    case other
}

/// An error in the debugging information of an object, naming the object and what was wrong.
struct DWARFError: Error, CustomStringConvertible {
    var description: String
}

/// Reads the `.debug_info` tree of a relocatable object, applying the relocations that a
/// relocatable object leaves in its debugging sections (Elf64_Rela addends hold the offsets
/// into `.debug_str` and `.debug_abbrev`).
///
/// DWARF versions 2 to 5 are read, with 32-bit and 64-bit offsets, for compile and partial
/// units. Type units (`-fdebug-types-section`) and split DWARF are rejected.
struct DWARFReader {
    private(set) var entries: [DebugEntry] = []
    /// Index in `entries` by `.debug_info` offset.
    private(set) var indexByOffset: [Int: Int] = [:]
    private let file: String
    private let info: [UInt8]
    private let abbreviations: [UInt8]
    private let strings: [UInt8]
    private let lineStrings: [UInt8]
    private let stringOffsets: [UInt8]

    init(object: ObjectFile) throws(DWARFError) {
        file = object.name
        guard let infoIndex = object.sectionIndex(named: ".debug_info") else {
            throw DWARFError(description: "\(object.name): no .debug_info section; compile with -g")
        }
        info = try Self.relocatedContents(of: infoIndex, in: object)
        abbreviations = try Self.optionalSection(".debug_abbrev", in: object)
        strings = try Self.optionalSection(".debug_str", in: object)
        lineStrings = try Self.optionalSection(".debug_line_str", in: object)
        stringOffsets = try Self.optionalSection(".debug_str_offsets", in: object)
        try readUnits()
    }

    /// Returns the entry at a `.debug_info` offset.
    func entry(at offset: Int) -> DebugEntry? {
        indexByOffset[offset].map { entries[$0] }
    }

    // MARK: Relocations

    /// Returns the relocated bytes of the section `name`, or none when the object has no such
    /// section.
    private static func optionalSection(_ name: String, in object: ObjectFile) throws(DWARFError) -> [UInt8] {
        guard let index = object.sectionIndex(named: name) else { return [] }
        return try relocatedContents(of: index, in: object)
    }

    /// Returns the section's bytes with its absolute relocations applied: S + A, where S is the
    /// symbol's offset in its own section, which is what a debugging section refers to.
    private static func relocatedContents(of index: Int, in object: ObjectFile) throws(DWARFError) -> [UInt8] {
        var bytes = Array(object.contents(of: index))
        for relocationSection in object.relocationSections where relocationSection.target == index {
            for relocation in relocationSection.relocations {
                let size: Int
                switch (object.machine, relocation.type) {
                case (.x86_64, 1), (.aarch64, 257): size = 8 // R_X86_64_64, R_AARCH64_ABS64
                case (.x86_64, 10), (.x86_64, 11), (.aarch64, 258): size = 4 // R_X86_64_32, R_X86_64_32S, R_AARCH64_ABS32
                default:
                    throw DWARFError(description: "\(object.name):(\(object.sections[index].name)+0x\(String(relocation.offset, radix: 16))): unsupported relocation type \(relocation.type) in debugging information")
                }
                let at = Int(relocation.offset)
                guard at + size <= bytes.count else {
                    throw DWARFError(description: "\(object.name):(\(object.sections[index].name)+0x\(String(at, radix: 16))): relocation outside the section; the object is damaged")
                }
                let value = object.symbols[relocation.symbolIndex].value &+ UInt64(bitPattern: relocation.addend)
                for byte in 0 ..< size { bytes[at + byte] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(byte))) }
            }
        }
        return bytes
    }

    // MARK: Units

    private struct Abbreviation {
        var tag: UInt64
        var hasChildren: Bool
        var specifications: [(attribute: UInt64, form: UInt64, implicitConstant: Int64)]
    }

    /// What decoding a unit's forms depends on.
    private struct UnitContext {
        var start: Int
        var version: Int
        var offsetSize: Int
        var addressSize: Int
        var stringOffsetsBase: Int = 8
    }

    private mutating func readUnits() throws(DWARFError) {
        var cursor = ByteCursor(bytes: info, file: file, section: ".debug_info")
        while !cursor.atEnd {
            let start = cursor.position
            var offsetSize = 4
            var length = Int(try cursor.u32())
            if length == 0xffff_ffff {
                offsetSize = 8
                length = Int(try cursor.u64())
            }
            let end = cursor.position + length
            guard end <= info.count else { throw cursor.error("unit at 0x\(String(start, radix: 16)) extends past the section") }
            let version = Int(try cursor.u16())
            guard (2 ... 5).contains(version) else { throw cursor.error("unsupported DWARF version \(version)") }
            var addressSize = 8
            let abbreviationOffset: Int
            if version >= 5 {
                let unitType = try cursor.u8()
                guard unitType == 1 || unitType == 3 else {
                    throw cursor.error("unsupported unit type \(unitType); type units and split DWARF cannot be read, so compile without -fdebug-types-section and -gsplit-dwarf")
                }
                addressSize = Int(try cursor.u8())
                abbreviationOffset = try cursor.offset(size: offsetSize)
            } else {
                abbreviationOffset = try cursor.offset(size: offsetSize)
                addressSize = Int(try cursor.u8())
            }
            let table = try readAbbreviations(at: abbreviationOffset)
            let context = UnitContext(start: start, version: version, offsetSize: offsetSize, addressSize: addressSize)
            try readEntries(&cursor, until: end, abbreviations: table, context: context)
            cursor.position = end
        }
    }

    private func readAbbreviations(at offset: Int) throws(DWARFError) -> [UInt64: Abbreviation] {
        var cursor = ByteCursor(bytes: abbreviations, file: file, section: ".debug_abbrev")
        cursor.position = offset
        var table: [UInt64: Abbreviation] = [:]
        while true {
            let code = try cursor.uleb()
            if code == 0 { break }
            var abbreviation = Abbreviation(tag: try cursor.uleb(), hasChildren: try cursor.u8() != 0, specifications: [])
            while true {
                let attribute = try cursor.uleb()
                let form = try cursor.uleb()
                if attribute == 0 && form == 0 { break }
                let constant = form == 0x21 ? try cursor.sleb() : 0
                abbreviation.specifications.append((attribute, form, constant))
            }
            table[code] = abbreviation
        }
        return table
    }

    private mutating func readEntries(_ cursor: inout ByteCursor, until end: Int, abbreviations table: [UInt64: Abbreviation],
                                      context: UnitContext) throws(DWARFError) {
        var context = context
        var parents: [Int] = []
        var pendingStringIndexes: [(entry: Int, attribute: UInt64, index: UInt64)] = []
        while cursor.position < end {
            let offset = cursor.position
            let code = try cursor.uleb()
            if code == 0 {
                _ = parents.popLast()
                continue
            }
            guard let abbreviation = table[code] else {
                throw cursor.error("entry at 0x\(String(offset, radix: 16)) uses abbreviation \(code), which is not defined")
            }
            var entry = DebugEntry(offset: offset, tag: abbreviation.tag, parent: parents.last)
            let index = entries.count
            for specification in abbreviation.specifications {
                var form = specification.form
                if form == 0x16 { form = try cursor.uleb() } // DW_FORM_indirect
                let value = try readValue(form: form, implicitConstant: specification.implicitConstant, cursor: &cursor, context: context)
                if case .unsigned(let stringIndex) = value, Self.stringIndexForms.contains(form) {
                    pendingStringIndexes.append((index, specification.attribute, stringIndex))
                } else {
                    entry.attributes[specification.attribute] = value
                }
                if specification.attribute == 0x72, case .unsigned(let base) = value { // DW_AT_str_offsets_base
                    context.stringOffsetsBase = Int(base)
                }
            }
            if let parent = parents.last { entries[parent].children.append(index) }
            entries.append(entry)
            indexByOffset[offset] = index
            if abbreviation.hasChildren { parents.append(index) }
        }
        // The unit's root may name its DW_AT_str_offsets_base after the strings that use it.
        for pending in pendingStringIndexes {
            let at = context.stringOffsetsBase + Int(pending.index) * context.offsetSize
            var offsets = ByteCursor(bytes: stringOffsets, file: file, section: ".debug_str_offsets")
            offsets.position = at
            let stringOffset = try offsets.offset(size: context.offsetSize)
            entries[pending.entry].attributes[pending.attribute] = .string(try cString(strings, at: stringOffset, section: ".debug_str"))
        }
    }

    /// DW_FORM_strx, strx1 to strx4 and GNU_str_index.
    private static let stringIndexForms: Set<UInt64> = [0x1a, 0x25, 0x26, 0x27, 0x28, 0x1f02]

    private func readValue(form: UInt64, implicitConstant: Int64, cursor: inout ByteCursor,
                           context: UnitContext) throws(DWARFError) -> DebugValue {
        switch form {
        case 0x01: return .unsigned(try cursor.unsigned(size: context.addressSize)) // addr
        case 0x03: return .expression(try cursor.bytes(Int(try cursor.u16()))) // block2
        case 0x04: return .expression(try cursor.bytes(Int(try cursor.u32()))) // block4
        case 0x05: return .data(UInt64(try cursor.u16()), size: 2)
        case 0x06: return .data(UInt64(try cursor.u32()), size: 4)
        case 0x07: return .data(try cursor.u64(), size: 8)
        case 0x08: return .string(try cursor.cString()) // string
        case 0x09, 0x18: return .expression(try cursor.bytes(Int(try cursor.uleb()))) // block, exprloc
        case 0x0a: return .expression(try cursor.bytes(Int(try cursor.u8()))) // block1
        case 0x0b: return .data(UInt64(try cursor.u8()), size: 1)
        case 0x0c: return .flag(try cursor.u8() != 0)
        case 0x0d: return .signed(try cursor.sleb()) // sdata
        case 0x0e: return .string(try cString(strings, at: try cursor.offset(size: context.offsetSize), section: ".debug_str")) // strp
        case 0x0f: return .unsigned(try cursor.uleb()) // udata
        case 0x10: // ref_addr
            return .reference(try cursor.offset(size: context.version == 2 ? context.addressSize : context.offsetSize))
        case 0x11: return .reference(context.start + Int(try cursor.u8()))
        case 0x12: return .reference(context.start + Int(try cursor.u16()))
        case 0x13: return .reference(context.start + Int(try cursor.u32()))
        case 0x14: return .reference(context.start + Int(try cursor.u64()))
        case 0x15: return .reference(context.start + Int(try cursor.uleb()))
        case 0x17: return .unsigned(UInt64(try cursor.offset(size: context.offsetSize))) // sec_offset
        case 0x19: return .flag(true) // flag_present
        case 0x1a, 0x1b, 0x22, 0x23, 0x1f01, 0x1f02: return .unsigned(try cursor.uleb()) // strx, addrx, loclistx, rnglistx
        case 0x1c: return .unsigned(UInt64(try cursor.u32())) // ref_sup4
        case 0x1d, 0x1f20, 0x1f21: return .unsigned(UInt64(try cursor.offset(size: context.offsetSize))) // strp_sup, GNU alt
        case 0x1e: _ = try cursor.bytes(16); return .other // data16
        case 0x1f: return .string(try cString(lineStrings, at: try cursor.offset(size: context.offsetSize), section: ".debug_line_str"))
        case 0x20:
            throw cursor.error("type signature references (DW_FORM_ref_sig8) are not supported; compile without -fdebug-types-section")
        case 0x21: return .signed(implicitConstant)
        case 0x24: return .unsigned(try cursor.u64()) // ref_sup8
        case 0x25, 0x29: return .unsigned(UInt64(try cursor.u8()))
        case 0x26, 0x2a: return .unsigned(UInt64(try cursor.u16()))
        case 0x27, 0x2b: return .unsigned(try cursor.unsigned(size: 3))
        case 0x28, 0x2c: return .unsigned(UInt64(try cursor.u32()))
        default:
            throw cursor.error("unsupported attribute form 0x\(String(form, radix: 16))")
        }
    }

    private func cString(_ bytes: [UInt8], at offset: Int, section: String) throws(DWARFError) -> String {
        var cursor = ByteCursor(bytes: bytes, file: file, section: section)
        cursor.position = offset
        return try cursor.cString()
    }
}

/// A bounds-checked little-endian reader over one section's bytes.
struct ByteCursor {
    let bytes: [UInt8]
    let file: String
    let section: String
    var position = 0

    var atEnd: Bool { position >= bytes.count }

    func error(_ message: String) -> DWARFError {
        DWARFError(description: "\(file):(\(section)+0x\(String(position, radix: 16))): \(message)")
    }

    mutating func bytes(_ count: Int) throws(DWARFError) -> [UInt8] {
        guard count >= 0, position <= bytes.count - count else { throw error("truncated: \(count) bytes expected") }
        defer { position += count }
        return Array(bytes[position ..< position + count])
    }

    mutating func unsigned(size: Int) throws(DWARFError) -> UInt64 {
        guard position <= bytes.count - size else { throw error("truncated: \(size) bytes expected") }
        var value: UInt64 = 0
        for index in 0 ..< size { value |= UInt64(bytes[position + index]) << (8 * UInt64(index)) }
        position += size
        return value
    }

    mutating func u8() throws(DWARFError) -> UInt8 { UInt8(try unsigned(size: 1)) }
    mutating func u16() throws(DWARFError) -> UInt16 { UInt16(try unsigned(size: 2)) }
    mutating func u32() throws(DWARFError) -> UInt32 { UInt32(try unsigned(size: 4)) }
    mutating func u64() throws(DWARFError) -> UInt64 { try unsigned(size: 8) }

    mutating func offset(size: Int) throws(DWARFError) -> Int {
        let value = try unsigned(size: size)
        guard value < UInt64(Int.max) else { throw error("offset 0x\(String(value, radix: 16)) is out of range") }
        return Int(value)
    }

    mutating func uleb() throws(DWARFError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try u8()
            if shift < 64 { result |= UInt64(byte & 0x7f) << shift }
            shift += 7
            if byte & 0x80 == 0 { return result }
        }
    }

    mutating func sleb() throws(DWARFError) -> Int64 {
        var result: Int64 = 0
        var shift: Int64 = 0
        var byte: UInt8
        repeat {
            byte = try u8()
            if shift < 64 { result |= Int64(byte & 0x7f) << shift }
            shift += 7
        } while byte & 0x80 != 0
        if shift < 64 && byte & 0x40 != 0 { result |= -(Int64(1) << shift) }
        return result
    }

    mutating func cString() throws(DWARFError) -> String {
        guard position < bytes.count, let end = bytes[position...].firstIndex(of: 0) else {
            throw error("unterminated string")
        }
        defer { position = end + 1 }
        return String(decoding: bytes[position ..< end], as: UTF8.self)
    }
}
