extension KallsymsTable {
    /// The table of every symbol `module` defines, local ones included, read from its objects'
    /// symbol tables with the addresses the link gave them.
    ///
    /// Sections, files, thread-local variables, absolute symbols, compiler-local labels and
    /// symbols of sections that are not loaded are left out.
    static func forModule(_ module: Module) -> KallsymsTable {
        forModule(named: module.name, objects: module.objects, symbolAddresses: module.symbolAddresses, span: module.memory.span)
    }

    /// Builds the table of a module named `name`, linked from `objects` into `span`, whose
    /// symbols have the addresses `symbolAddresses`, before its `Module` exists.
    static func forModule(named name: String, objects: [ObjectFile], symbolAddresses: [[UInt64]], span: AreaSpan) -> KallsymsTable {
        var builder = Builder()
        for (objectIndex, object) in objects.enumerated() {
            let addresses = symbolAddresses[objectIndex]
            for (index, symbol) in object.symbols.enumerated() where index > 0 {
                guard symbol.type != ELF.STT_SECTION, symbol.type != ELF.STT_FILE, symbol.type != ELF.STT_TLS,
                      !symbol.isUndefined, !symbol.isAbsolute
                else { continue }

                let letter: UInt8
                let isInit: Bool
                if symbol.isCommon {
                    letter = symbol.isLocal ? UInt8(ascii: "b") : UInt8(ascii: "B")
                    isInit = false
                } else {
                    guard Int(symbol.sectionIndex) < object.sections.count else { continue }
                    let section = object.sections[Int(symbol.sectionIndex)]
                    guard let region = RegionKind.of(section),
                          let sectionLetter = KallsymsTypeLetter.of(flags: section.flags, isNoBits: !section.hasFileContents,
                                                                    isGlobal: !symbol.isLocal)
                    else { continue }
                    letter = sectionLetter
                    isInit = region.isInit
                }

                let name = object.rawSymbolName(index)
                let bytes = UnsafeBufferPointer(start: name.start, count: name.count)
                guard KallsymsTypeLetter.isListed(bytes) else { continue }
                // Symbols of a discarded COMDAT copy take the kept copy's address and are
                // dropped as duplicates; locals of a section that was not placed fall outside
                // the module and are dropped by the range check.
                builder.add(name: bytes, address: addresses[index], size: symbol.size, type: letter, isInit: isInit)
            }
        }
        return KallsymsTable(ownerName: name, kind: .module, start: span.start, end: span.end, builder: builder)
    }
}
