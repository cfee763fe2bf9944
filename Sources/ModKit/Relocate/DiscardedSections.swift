/// References to sections the module does not load although they are allocated: later copies of
/// a COMDAT group (C++ inline functions and templates defined in several objects) and
/// `SHF_EXCLUDE` sections.
///
/// Global symbols of a discarded copy resolve by name to the kept copy. Local symbols, section
/// symbols included, have no address. The `.eh_frame` of every object refers to its copy of each
/// inline function that way, so its frame description entries (FDEs) for discarded copies are
/// made inert. Any other such reference is an error.
extension ModuleLayout {
    /// Returns whether `symbol` of `object` is a local symbol of an allocated section that is
    /// not loaded.
    func isInDiscardedSection(_ symbol: ObjectSymbol, of object: ObjectFile, objectIndex: Int) -> Bool {
        guard symbol.isLocal, !symbol.isUndefined, !symbol.isAbsolute, !symbol.isCommon,
              Int(symbol.sectionIndex) < object.sections.count else { return false }
        let section = object.sections[Int(symbol.sectionIndex)]
        return section.isAllocated && sectionOffsets[objectIndex][section.index] == nil
    }
}

extension Relocator {
    /// Returns the writes that replace `relocation`, which refers to a discarded section from
    /// `section` at `sectionAddress`, or throws when `section` is not `.eh_frame`.
    func writesForDiscardedReference(_ relocation: Relocation, object: ObjectFile, section: ObjectSection,
                                     sectionAddress: UInt64) throws(LoadError) -> [FieldWrite] {
        let symbol = object.symbols[relocation.symbolIndex]
        let target = object.sections[Int(symbol.sectionIndex)]
        guard section.name == ".eh_frame" else {
            let name = object.symbolName(relocation.symbolIndex)
            let reason = object.groups.first { $0.members.contains(target.index) }
                .map { "a duplicate of COMDAT group '\($0.signature)' kept from an earlier object" }
                ?? "a section that is not loaded"
            let referenced = symbol.type == ELF.STT_SECTION ? target.name : "'\(name)' in \(target.name)"
            throw LoadError(.referencesDiscardedSection, file: object.name, section: section.name, offset: relocation.offset, symbol: name,
                            "relocation \(architecture.typeName(relocation.type)) references \(referenced), \(reason); refer to it by a global symbol instead")
        }
        return inertFrameWrites(relocation, object: object, section: section, sectionAddress: sectionAddress)
    }

    /// Writes 0 into the field and, when the field is the initial location of an FDE, into the
    /// FDE's address range too. libgcc's unwinder skips an FDE whose initial location is 0, its
    /// mark of removed link-once code, and a range of 0 covers no address anyway.
    private func inertFrameWrites(_ relocation: Relocation, object: ObjectFile, section: ObjectSection,
                                  sectionAddress: UInt64) -> [FieldWrite] {
        // The field width of the type, from a value that always fits.
        let probe = RelocationInputs(S: 0, A: 0, P: 0, GOT: 0, G: 0, L: nil, Z: 0)
        guard case .write(let width, _, let mask) = architecture.compute(relocation.type, probe, field: 0),
              relocation.offset + UInt64(width) <= UInt64(section.size) else { return [] }
        var writes = [FieldWrite(address: sectionAddress + relocation.offset, width: width, value: 0, mask: mask)]

        let contents = object.contents(of: section.index)
        func u32(_ offset: Int) -> UInt32 { UInt32(littleEndian: contents.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        var entry = 0
        while entry + 8 <= contents.count {
            let length = Int(u32(entry))
            // A zero length ends the section. The length 0xffffffff marks the 64-bit format, which
            // this walk does not read, so such an FDE keeps its range.
            guard length != 0, length != 0xffff_ffff, entry + 4 + length <= contents.count else { break }
            let end = entry + 4 + length
            let isFDE = u32(entry + 4) != 0
            // An FDE: length, CIE pointer, initial location, address range of the same width.
            if isFDE, relocation.offset == UInt64(entry + 8), entry + 8 + 2 * Int(width) <= end {
                writes.append(FieldWrite(address: sectionAddress + UInt64(entry + 8 + Int(width)), width: width, value: 0, mask: mask))
                break
            }
            entry = end
        }
        return writes
    }
}
