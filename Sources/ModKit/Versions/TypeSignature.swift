/// Spells out the type of an exported function or variable from DWARF, with every type it
/// reaches, in a form that does not depend on the compiler, and hashes it into the symbol's
/// version CRC, as Linux's gendwarfksyms does.
///
/// The text has two parts: the signature (`function(s8 const *, ...) -> s32`), where named
/// structures, unions and enumerations appear by name, then the definition of every named
/// type the signature reaches, directly or through other definitions and pointers, sorted by
/// name. A type that refers back to itself through a pointer is therefore spelled once.
/// Base types are spelled by encoding and size, so `long int` from gcc and `long` from clang
/// are both `s64`. Typedefs are spelled by what they stand for. Parameter names, top-level
/// qualifiers of parameters and `restrict` are left out, because none of them change the
/// binary interface.
struct TypeSignature {
    private let dwarf: DWARFReader
    private var definitions: [String: String] = [:]
    /// Offsets of anonymous types being spelled, to stop a cycle that has no name to break it.
    private var spelling: Set<Int> = []

    private enum Tag {
        static let arrayType: UInt64 = 0x01, classType: UInt64 = 0x02, enumerationType: UInt64 = 0x04
        static let formalParameter: UInt64 = 0x05, member: UInt64 = 0x0d, pointerType: UInt64 = 0x0f
        static let referenceType: UInt64 = 0x10, structureType: UInt64 = 0x13, subroutineType: UInt64 = 0x15
        static let typedef: UInt64 = 0x16, unionType: UInt64 = 0x17, unspecifiedParameters: UInt64 = 0x18
        static let inheritance: UInt64 = 0x1c, pointerToMemberType: UInt64 = 0x1f, subrangeType: UInt64 = 0x21
        static let baseType: UInt64 = 0x24, constType: UInt64 = 0x26, enumerator: UInt64 = 0x28
        static let subprogram: UInt64 = 0x2e, variable: UInt64 = 0x34, volatileType: UInt64 = 0x35
        static let restrictType: UInt64 = 0x37, namespace: UInt64 = 0x39, unspecifiedType: UInt64 = 0x3b
        static let rvalueReferenceType: UInt64 = 0x42, atomicType: UInt64 = 0x47
    }

    private enum Attribute {
        static let name: UInt64 = 0x03, byteSize: UInt64 = 0x0b, bitOffset: UInt64 = 0x0c, bitSize: UInt64 = 0x0d
        static let constValue: UInt64 = 0x1c, upperBound: UInt64 = 0x2f, abstractOrigin: UInt64 = 0x31
        static let count: UInt64 = 0x37, dataMemberLocation: UInt64 = 0x38, declaration: UInt64 = 0x3c
        static let encoding: UInt64 = 0x3e, external: UInt64 = 0x3f, specification: UInt64 = 0x47
        static let type: UInt64 = 0x49, dataBitOffset: UInt64 = 0x6b, linkageName: UInt64 = 0x6e
        static let artificial: UInt64 = 0x34, mipsLinkageName: UInt64 = 0x2007
    }

    init(dwarf: DWARFReader) {
        self.dwarf = dwarf
    }

    // MARK: Finding symbols

    /// Returns the entry that defines the function or variable `symbol` (its linkage name, or
    /// its name when it has none, as for C and `extern "C"`), preferring a definition over a
    /// declaration.
    func entry(forSymbol symbol: String) -> DebugEntry? {
        var declaration: DebugEntry?
        for entry in dwarf.entries where entry.tag == Tag.subprogram || entry.tag == Tag.variable {
            guard isTopLevel(entry) else { continue }
            let linkageName = string(entry, Attribute.linkageName) ?? string(entry, Attribute.mipsLinkageName)
            guard (linkageName ?? string(entry, Attribute.name)) == symbol else { continue }
            if flag(entry, Attribute.declaration) && entry.attributes[Attribute.specification] == nil {
                declaration = declaration ?? entry
            } else {
                return entry
            }
        }
        return declaration
    }

    /// Whether the entry is a function or variable of file or namespace scope, not a local.
    private func isTopLevel(_ entry: DebugEntry) -> Bool {
        var parent = entry.parent
        while let index = parent {
            let tag = dwarf.entries[index].tag
            if tag == Tag.subprogram || tag == Tag.structureType || tag == Tag.classType || tag == Tag.unionType { return false }
            parent = dwarf.entries[index].parent
        }
        return true
    }

    // MARK: Spelling

    /// Returns the full text for the function or variable that `entry` describes.
    mutating func text(of entry: DebugEntry) -> String {
        let signature: String
        if entry.tag == Tag.subprogram {
            signature = functionType(returning: typeReference(entry), parameters: parameterEntries(of: entry))
        } else {
            signature = "variable " + spell(typeReference(entry))
        }
        return fullText(signature)
    }

    /// Returns the full text for the type a pointer variable points to: a function's signature
    /// when it points to a function, else `variable T`. The host API's versions come from such
    /// probes, `__typeof__(&printk) probe;`, because compilers describe only what a unit uses.
    mutating func text(ofPointee pointerVariable: DebugEntry) -> String? {
        guard let pointer = typeReference(pointerVariable).flatMap(dwarf.entry(at:)), pointer.tag == Tag.pointerType else { return nil }
        let pointee = typeReference(pointer).flatMap(dwarf.entry(at:))
        if let pointee, pointee.tag == Tag.subroutineType {
            return fullText(functionType(returning: typeReference(pointee), parameters: children(of: pointee)))
        }
        return fullText("variable " + spell(typeReference(pointer)))
    }

    private func fullText(_ signature: String) -> String {
        ([signature] + definitions.keys.sorted().map { definitions[$0]! }).joined(separator: "\n")
    }

    private mutating func functionType(returning result: Int?, parameters: [DebugEntry]) -> String {
        var spelled: [String] = []
        for parameter in parameters {
            if parameter.tag == Tag.unspecifiedParameters {
                spelled.append("...")
            } else if parameter.tag == Tag.formalParameter {
                spelled.append(spell(withoutQualifiers(typeReference(parameter))))
            }
        }
        return "function(\(spelled.joined(separator: ", "))) -> \(spell(withoutQualifiers(result)))"
    }

    /// The formal parameters of a function, taken from the entry it completes or instantiates
    /// when it has none of its own.
    private func parameterEntries(of entry: DebugEntry) -> [DebugEntry] {
        let own = children(of: entry).filter { $0.tag == Tag.formalParameter || $0.tag == Tag.unspecifiedParameters }
        if !own.isEmpty { return own }
        for attribute in [Attribute.specification, Attribute.abstractOrigin] {
            if case .reference(let offset) = entry.attributes[attribute], let origin = dwarf.entry(at: offset) {
                let inherited = parameterEntries(of: origin)
                if !inherited.isEmpty { return inherited }
            }
        }
        return []
    }

    /// Spells the type at `reference` (nil is `void`), recording the definitions it reaches.
    ///
    /// Qualifiers follow what they qualify (`s8 const *` and `s8 * const` differ), collect
    /// through typedefs and apply to an array's elements, because gcc and clang attach them
    /// to the array and to the element respectively.
    private mutating func spell(_ reference: Int?, qualifiers: Set<String> = []) -> String {
        guard let reference else { return "void" + suffix(qualifiers) }
        guard let entry = dwarf.entry(at: reference) else { return "<missing type 0x\(String(reference, radix: 16))>" }
        switch entry.tag {
        case Tag.constType:
            return spell(typeReference(entry), qualifiers: qualifiers.union(["const"]))
        case Tag.volatileType:
            return spell(typeReference(entry), qualifiers: qualifiers.union(["volatile"]))
        case Tag.atomicType:
            return spell(typeReference(entry), qualifiers: qualifiers.union(["_Atomic"]))
        case Tag.restrictType, Tag.typedef:
            return spell(typeReference(entry), qualifiers: qualifiers)
        case Tag.arrayType:
            return spell(typeReference(entry), qualifiers: qualifiers) + arrayBounds(entry)
        default:
            return spellUnqualified(entry) + suffix(qualifiers)
        }
    }

    private func suffix(_ qualifiers: Set<String>) -> String {
        qualifiers.sorted().map { " " + $0 }.joined()
    }

    private mutating func spellUnqualified(_ entry: DebugEntry) -> String {
        switch entry.tag {
        case Tag.baseType:
            return baseTypeName(entry)
        case Tag.pointerType:
            return spell(typeReference(entry)) + " *"
        case Tag.referenceType:
            return spell(typeReference(entry)) + " &"
        case Tag.rvalueReferenceType:
            return spell(typeReference(entry)) + " &&"
        case Tag.subroutineType:
            return "(" + functionType(returning: typeReference(entry), parameters: children(of: entry)) + ")"
        case Tag.pointerToMemberType:
            return "member pointer (" + spell(typeReference(entry)) + ")"
        case Tag.unspecifiedType:
            return string(entry, Attribute.name) ?? "unspecified"
        case Tag.structureType, Tag.classType, Tag.unionType, Tag.enumerationType:
            return spellAggregate(entry)
        default:
            return "<DWARF tag 0x\(String(entry.tag, radix: 16))>"
        }
    }

    /// Spells a named aggregate by name and records its definition once. Spells an anonymous
    /// one in place.
    private mutating func spellAggregate(_ entry: DebugEntry) -> String {
        let keyword = switch entry.tag {
        case Tag.unionType: "union"
        case Tag.enumerationType: "enum"
        default: "struct"
        }
        guard let name = qualifiedName(entry) else {
            guard spelling.insert(entry.offset).inserted else { return "\(keyword) <cycle>" }
            defer { spelling.remove(entry.offset) }
            return "\(keyword) " + body(of: entry)
        }
        let key = "\(keyword) \(name)"
        if definitions[key] == nil {
            definitions[key] = "" // Marks the type as being defined, for references back to it.
            let definition = "\(key) " + body(of: completeDefinition(of: entry))
            definitions[key] = definition
        }
        return key
    }

    /// Returns the unit's definition of a declared type, or the entry itself.
    private func completeDefinition(of entry: DebugEntry) -> DebugEntry {
        guard flag(entry, Attribute.declaration), let name = qualifiedName(entry) else { return entry }
        return dwarf.entries.first { $0.tag == entry.tag && !flag($0, Attribute.declaration) && qualifiedName($0) == name } ?? entry
    }

    private mutating func body(of entry: DebugEntry) -> String {
        if flag(entry, Attribute.declaration) { return "{declared only}" }
        let size = unsigned(entry, Attribute.byteSize).map { "size \($0)" } ?? "size unknown"
        var fields: [String] = [size]
        if entry.tag == Tag.enumerationType {
            let underlying = typeReference(entry).flatMap(dwarf.entry(at:))
            let signed = underlying.map { [5, 6, 0xd].contains(unsigned($0, Attribute.encoding) ?? 0) } ?? false
            let bits = Int(unsigned(entry, Attribute.byteSize) ?? 8) * 8
            for enumerator in children(of: entry) where enumerator.tag == Tag.enumerator {
                let value = constantValue(enumerator.attributes[Attribute.constValue], signed: signed, bits: bits)
                fields.append("\(string(enumerator, Attribute.name) ?? "") = \(value)")
            }
        } else {
            for member in children(of: entry) {
                if member.tag == Tag.inheritance {
                    fields.append("base " + spell(typeReference(member)) + " at \(memberOffset(member) ?? 0)")
                } else if member.tag == Tag.member && !flag(member, Attribute.external) && !flag(member, Attribute.declaration) {
                    fields.append(describeMember(member))
                }
            }
        }
        return "{" + fields.joined(separator: "; ") + "}"
    }

    /// `T name at BYTE` for a plain member, `T name at bit BIT width N` for a bit-field.
    private mutating func describeMember(_ member: DebugEntry) -> String {
        // gcc and clang name and type the vtable pointer differently (_vptr.base, _vptr$base).
        if flag(member, Attribute.artificial) { return "vtable pointer at \(memberOffset(member) ?? 0)" }
        var text = spell(typeReference(member))
        if let name = string(member, Attribute.name) { text += " " + name }
        guard let bitSize = unsigned(member, Attribute.bitSize) else {
            return text + " at \(memberOffset(member) ?? 0)"
        }
        // DWARF 4 and later give the bit offset from the start of the structure; DWARF 2 and 3
        // give it from the most significant bit of a storage unit of DW_AT_byte_size bytes.
        var bit: UInt64
        if let dataBitOffset = unsigned(member, Attribute.dataBitOffset) {
            bit = dataBitOffset
        } else {
            let unitBits = (unsigned(member, Attribute.byteSize) ?? 0) * 8
            let fromMostSignificant = unsigned(member, Attribute.bitOffset) ?? 0
            bit = (memberOffset(member) ?? 0) * 8 &+ unitBits &- fromMostSignificant &- bitSize
        }
        return text + " at bit \(bit) width \(bitSize)"
    }

    private func memberOffset(_ member: DebugEntry) -> UInt64? {
        switch member.attributes[Attribute.dataMemberLocation] {
        case .expression(let bytes) where bytes.first == 0x23: // DW_OP_plus_uconst
            var cursor = ByteCursor(bytes: Array(bytes.dropFirst()), file: "", section: "")
            return try? cursor.uleb()
        case let value?:
            return unsignedValue(value)
        case nil:
            return nil
        }
    }

    private mutating func arrayBounds(_ entry: DebugEntry) -> String {
        var text = ""
        for subrange in children(of: entry) where subrange.tag == Tag.subrangeType {
            if let count = unsigned(subrange, Attribute.count) {
                text += "[\(count)]"
            } else if let upper = unsigned(subrange, Attribute.upperBound) {
                text += "[\(upper &+ 1)]"
            } else if subrange.attributes[Attribute.upperBound] != nil || subrange.attributes[Attribute.count] != nil {
                text += "[*]"
            } else {
                text += "[]"
            }
        }
        return text.isEmpty ? "[]" : text
    }

    /// `s32`, `u8`, `f64`, `bool`: the encoding and the size in bits.
    private func baseTypeName(_ entry: DebugEntry) -> String {
        let bits = (unsigned(entry, Attribute.byteSize) ?? 0) * 8
        switch unsigned(entry, Attribute.encoding) ?? 0 {
        case 0x02: return "bool"
        case 0x03: return "c\(bits)" // complex_float
        case 0x04: return "f\(bits)"
        case 0x05, 0x06: return "s\(bits)" // signed, signed_char
        case 0x07, 0x08: return "u\(bits)" // unsigned, unsigned_char
        case 0x10: return "utf\(bits)"
        case let encoding: return "encoding\(encoding)-\(bits)"
        }
    }

    // MARK: Attributes

    /// Returns the name with the enclosing namespaces and classes, `a::b::name`, or nil when
    /// the type is anonymous.
    private func qualifiedName(_ entry: DebugEntry) -> String? {
        guard let name = string(entry, Attribute.name) else { return nil }
        var parts = [name]
        var parent = entry.parent
        while let index = parent {
            let scope = dwarf.entries[index]
            if [Tag.namespace, Tag.structureType, Tag.classType, Tag.unionType].contains(scope.tag) {
                parts.insert(string(scope, Attribute.name) ?? "(anonymous)", at: 0)
            }
            parent = scope.parent
        }
        return parts.joined(separator: "::")
    }

    /// Returns the entry's DW_AT_type, or that of the entry it completes or instantiates.
    private func typeReference(_ entry: DebugEntry) -> Int? {
        if case .reference(let offset) = entry.attributes[Attribute.type] { return offset }
        for attribute in [Attribute.specification, Attribute.abstractOrigin] {
            if case .reference(let offset) = entry.attributes[attribute], let origin = dwarf.entry(at: offset) {
                return typeReference(origin)
            }
        }
        return nil
    }

    /// Skips `const`, `volatile` and `restrict` at the top of a type, which do not change how
    /// a parameter is passed.
    private func withoutQualifiers(_ reference: Int?) -> Int? {
        guard let reference, let entry = dwarf.entry(at: reference),
              [Tag.constType, Tag.volatileType, Tag.restrictType].contains(entry.tag) else { return reference }
        return withoutQualifiers(typeReference(entry))
    }

    private func children(of entry: DebugEntry) -> [DebugEntry] {
        guard let index = dwarf.indexByOffset[entry.offset] else { return [] }
        return dwarf.entries[index].children.map { dwarf.entries[$0] }
    }

    private func string(_ entry: DebugEntry, _ attribute: UInt64) -> String? {
        if case .string(let text) = entry.attributes[attribute] { return text }
        return nil
    }

    private func flag(_ entry: DebugEntry, _ attribute: UInt64) -> Bool {
        switch entry.attributes[attribute] {
        case .flag(let value): value
        case nil: false
        default: true
        }
    }

    private func unsigned(_ entry: DebugEntry, _ attribute: UInt64) -> UInt64? {
        entry.attributes[attribute].flatMap(unsignedValue)
    }

    private func unsignedValue(_ value: DebugValue) -> UInt64? {
        switch value {
        case .unsigned(let number), .data(let number, _): number
        case .signed(let number): number >= 0 ? UInt64(number) : nil
        default: nil
        }
    }

    /// Returns an enumerator's value as a bit pattern of the enumeration's size, so that the
    /// forms gcc and clang choose for one value spell the same.
    private func constantValue(_ value: DebugValue?, signed: Bool, bits: Int) -> String {
        var number: UInt64
        switch value {
        case .signed(let signedNumber): number = UInt64(bitPattern: signedNumber)
        case .unsigned(let unsignedNumber): number = unsignedNumber
        case .data(let raw, let size):
            number = raw
            if signed && size < 8 && raw >> UInt64(size * 8 - 1) & 1 == 1 { number |= ~UInt64(0) << UInt64(size * 8) }
        default: return "?"
        }
        if bits < 64 { number &= (UInt64(1) << UInt64(bits)) - 1 }
        return "0x" + String(number, radix: 16)
    }
}
