/// Applies a module's relocations in two passes over the same computation: the first checks
/// every value and throws the first that does not fit, the second writes. A load that fails
/// here has written no relocated byte.
struct Relocator {
    let objects: [ObjectFile]
    let layout: ModuleLayout
    let resolved: ResolvedSymbols
    let architecture: any RelocationArchitecture.Type
    let base: UInt64
    /// Per object, per symbol: what a relocation against it needs, in one record so that each
    /// relocation reads one place.
    private let links: [[SymbolLink]]

    private struct SymbolLink {
        var address: UInt64
        var size: UInt64
        /// Offset of the GOT entry from the GOT, or -1.
        var gotOffset: Int64
        /// Address of the branch stub, or 0.
        var stub: UInt64
    }

    init(objects: [ObjectFile], symbols moduleSymbols: ModuleSymbols, layout: ModuleLayout, resolved: ResolvedSymbols,
         architecture: any RelocationArchitecture.Type, base: UInt64) {
        self.objects = objects
        self.layout = layout
        self.resolved = resolved
        self.architecture = architecture
        self.base = base
        links = objects.indices.map { objectIndex in
            let symbols = objects[objectIndex].symbols
            let gotSlots = layout.gotSlotOf[objectIndex], stubSlots = layout.stubSlotOf[objectIndex]
            return symbols.indices.map { index in
                SymbolLink(address: resolved.addresses[objectIndex][index],
                           size: Self.definitionSize(objects: objects, symbols: moduleSymbols, object: objectIndex, index: index),
                           gotOffset: gotSlots[index] >= 0 ? Int64(gotSlots[index]) * 8 : -1,
                           stub: stubSlots[index] >= 0 ? base + UInt64(layout.stubOffset + Int(stubSlots[index]) * architecture.stubSize) : 0)
            }
        }
    }

    /// Returns the size of the symbol that entry `index` of object `object` binds to (`Z`): the
    /// definition's size, which for a global defined in another object of the module is not the
    /// size of the referencing object's undefined entry, and the merged size of a COMMON symbol.
    private static func definitionSize(objects: [ObjectFile], symbols: ModuleSymbols, object: Int, index: Int) -> UInt64 {
        switch symbols.bindings[object][index] {
        case .local, .external:
            return objects[object].symbols[index].size
        case .defined(let location, let isCommon):
            if isCommon, let definition = symbols.definition(named: symbols.globalName(object: location.object, index: location.index)) {
                return definition.commonSize
            }
            return objects[location.object].symbols[location.index].size
        }
    }

    /// Computes every field without writing, throwing the first relocation that does not fit.
    func check() throws(LoadError) {
        try forEachField { _ in }
    }

    /// Writes every field, after `check()` succeeded, then the GOT entries and branch stubs.
    func apply(into memory: some LinkTarget) throws(LoadError) {
        try forEachField { write($0, into: memory) }
        writeGOTAndStubs(into: memory)
    }

    private func forEachField(_ body: (FieldWrite) -> Void) throws(LoadError) {
        if architecture == X86_64.self { return try forEachField(for: X86_64.self, body) }
        if architecture == AArch64.self { return try forEachField(for: AArch64.self, body) }
        try forEachField(for: architecture, body)
    }

    /// The loop itself, specialized per architecture so `compute` is a direct call.
    private func forEachField<Architecture: RelocationArchitecture>(for _: Architecture.Type,
                                                                   _ body: (FieldWrite) -> Void) throws(LoadError) {
        let got = base + UInt64(layout.gotOffset)

        for (objectIndex, object) in objects.enumerated() {
            let symbols = links[objectIndex]
            for relocationSection in object.relocationSections {
                guard let sectionOffset = layout.sectionOffsets[objectIndex][relocationSection.target] else { continue }
                let section = object.sections[relocationSection.target]
                let sectionAddress = base + UInt64(sectionOffset)
                let contents = object.contents(of: section.index)

                for relocation in relocationSection.relocations {
                    let symbol = symbols[relocation.symbolIndex]
                    // A symbol in a discarded section resolves to 0, so only then is it looked at.
                    if symbol.address == 0,
                       layout.isInDiscardedSection(object.symbols[relocation.symbolIndex], of: object, objectIndex: objectIndex) {
                        for write in try writesForDiscardedReference(relocation, object: object, section: section,
                                                                     sectionAddress: sectionAddress) {
                            body(write)
                        }
                        continue
                    }
                    let inputs = RelocationInputs(S: symbol.address, A: relocation.addend, P: sectionAddress + relocation.offset,
                                                  GOT: got, G: symbol.gotOffset >= 0 ? UInt64(symbol.gotOffset) : 0,
                                                  L: symbol.stub != 0 ? symbol.stub : nil, Z: symbol.size)
                    let field = Self.originalField(contents, offset: Int(relocation.offset))
                    switch Architecture.compute(relocation.type, inputs, field: field) {
                    case .nothing:
                        continue
                    case .write(let width, let value, let mask):
                        guard relocation.offset + UInt64(width) <= UInt64(section.size) else {
                            throw LoadError(.relocationOutOfSection, file: object.name, section: section.name, offset: relocation.offset,
                                            "relocation \(architecture.typeName(relocation.type)) writes \(width) bytes past the end of its section (\(section.size) bytes)")
                        }
                        guard section.hasFileContents else {
                            throw LoadError(.relocationOutOfSection, file: object.name, section: section.name, offset: relocation.offset,
                                            "relocation \(architecture.typeName(relocation.type)) applies to a section without contents (SHT_NOBITS)")
                        }
                        body(FieldWrite(address: inputs.P, width: width, value: value, mask: mask))
                    case .outOfRange(let value, let minimum, let maximum, let unsignedMaximum):
                        throw rangeError(relocation, object: object, section: section, value: value,
                                         range: unsignedMaximum.map { "[0, \($0)]" } ?? "[\(minimum), \(maximum)]")
                    case .misaligned(let value, let alignment):
                        let name = object.symbolName(relocation.symbolIndex)
                        throw LoadError(.misalignedRelocation, file: object.name, section: section.name, offset: relocation.offset, symbol: name,
                                        "relocation \(architecture.typeName(relocation.type)) improperly aligned: 0x\(String(UInt64(bitPattern: value), radix: 16)) is not aligned to \(alignment) bytes; references '\(name)'")
                    }
                }
            }
        }
    }

    /// Reads the little-endian bytes at `offset` of a section's contents, up to 8, zero past the end.
    private static func originalField(_ contents: UnsafeRawBufferPointer, offset: Int) -> UInt64 {
        guard offset < contents.count else { return 0 }
        if contents.count - offset >= 8 {
            return UInt64(littleEndian: contents.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        var field: UInt64 = 0
        for index in offset ..< contents.count {
            field |= UInt64(contents[index]) << UInt64(8 * (index - offset))
        }
        return field
    }

    private func rangeError(_ relocation: Relocation, object: ObjectFile, section: ObjectSection, value: Int64, range: String) -> LoadError {
        let name = object.symbolName(relocation.symbolIndex)
        let typeName = architecture.typeName(relocation.type)
        var message = "relocation \(typeName) out of range: \(value) is not in \(range)"
        // A relocation against symbol 0 has no name: the assembler folded the target into the addend.
        if !name.isEmpty { message += "; references '\(name)'" }
        var kind = LoadError.Kind.relocationOutOfRange
        // Where the module was placed matters only for symbols outside it. Within the module
        // every distance fits, so only the addend or an absolute symbol's value can overflow,
        // and -fPIC would not help.
        let origin = object.symbols[relocation.symbolIndex].isUndefined ? resolved.origin(of: name) : nil
        switch origin {
        case .process?, .host?:
            kind = .needsPIC
            message += "\n>>> '\(name)' is defined outside the module, beyond the reach of \(typeName); rebuild the module with -fPIC"
        case .module(let owner)?:
            message += "\n>>> '\(name)' is exported by module \(owner)"
            if layout.zone == .low {
                kind = .needsPIC
                message += ", out of reach of this object: it uses absolute 32-bit addresses, so it was placed below 2 GiB; rebuild it with -fPIC"
            }
        default:
            break
        }
        return LoadError(kind, file: object.name, section: section.name, offset: relocation.offset, symbol: name, message)
    }

    /// Copies section contents into the image and zero-fills every byte no section covers, so
    /// nothing of a previous user of the pages remains.
    func copySections(into memory: some LinkTarget) {
        var placed: [(start: UInt64, size: Int, contents: UnsafeRawBufferPointer?)] = []
        for (objectIndex, object) in objects.enumerated() {
            for section in object.sections where section.size > 0 {
                guard let offset = layout.sectionOffsets[objectIndex][section.index] else { continue }
                placed.append((base + UInt64(offset), section.size, section.hasFileContents ? object.contents(of: section.index) : nil))
            }
        }
        placed.sort { $0.start < $1.start }

        var next = 0
        for span in memory.spans {
            var cursor = span.start
            let end = span.start + UInt64(span.size)
            while next < placed.count, placed[next].start < end {
                let section = placed[next]
                if section.start > cursor {
                    memory.pointer(cursor).initializeMemory(as: UInt8.self, repeating: 0, count: Int(section.start - cursor))
                }
                if let contents = section.contents {
                    memory.pointer(section.start).copyMemory(from: contents.baseAddress!, byteCount: section.size)
                } else {
                    memory.pointer(section.start).initializeMemory(as: UInt8.self, repeating: 0, count: section.size)
                }
                cursor = max(cursor, section.start + UInt64(section.size))
                next += 1
            }
            if end > cursor {
                memory.pointer(cursor).initializeMemory(as: UInt8.self, repeating: 0, count: Int(end - cursor))
            }
        }
    }

    private func write(_ write: FieldWrite, into memory: some LinkTarget) {
        let field = memory.pointer(write.address)
        switch write.width {
        case 1:
            let old = UInt64(field.load(as: UInt8.self))
            field.storeBytes(of: UInt8(truncatingIfNeeded: (old & ~write.mask) | (write.value & write.mask)), as: UInt8.self)
        case 2:
            let old = UInt64(UInt16(littleEndian: field.loadUnaligned(as: UInt16.self)))
            field.storeBytes(of: UInt16(truncatingIfNeeded: (old & ~write.mask) | (write.value & write.mask)).littleEndian, as: UInt16.self)
        case 4:
            let old = UInt64(UInt32(littleEndian: field.loadUnaligned(as: UInt32.self)))
            field.storeBytes(of: UInt32(truncatingIfNeeded: (old & ~write.mask) | (write.value & write.mask)).littleEndian, as: UInt32.self)
        default:
            let old = UInt64(littleEndian: field.loadUnaligned(as: UInt64.self))
            field.storeBytes(of: ((old & ~write.mask) | (write.value & write.mask)).littleEndian, as: UInt64.self)
        }
    }

    private func writeGOTAndStubs(into memory: some LinkTarget) {
        for (slot, symbol) in layout.gotOrder.enumerated() {
            let target = resolved.addresses[symbol.object][symbol.index]
            memory.pointer(base + UInt64(layout.gotOffset + slot * 8)).storeBytes(of: target.littleEndian, as: UInt64.self)
        }
        for (slot, symbol) in layout.stubOrder.enumerated() {
            let address = base + UInt64(layout.stubOffset + slot * architecture.stubSize)
            architecture.writeStub(memory.pointer(address), address: address, target: resolved.addresses[symbol.object][symbol.index])
        }
    }
}
