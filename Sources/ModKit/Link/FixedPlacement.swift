/// Moves a module's layout to the addresses a link map gives, and describes a layout as a map.
struct FixedPlacement {
    let objects: [ObjectFile]
    let symbols: ModuleSymbols
    let architecture: any RelocationArchitecture.Type

    /// The largest image, so that a mistyped address does not produce a file of many gigabytes:
    /// `StaticLinker.maximumImageSize` for `modkit link`.
    var maximumImageSize = StaticLinker.maximumImageSize

    /// One thing placed at a fixed address.
    private struct Item {
        var address: UInt64?
        var size: Int
        var alignment: Int
        var description: String
    }

    /// Applies `map` to `layout` and returns the image's base address.
    ///
    /// A map without `section` lines moves ModKit's own layout to `base`. A map with them must
    /// place every loaded section. The GOT, the stubs, the `struct module` and the COMMON
    /// symbols that it does not place go after the highest address it uses.
    func apply(_ map: LinkMap, to layout: inout ModuleLayout) throws(LoadError) -> UInt64 {
        if map.sections.isEmpty {
            return try checkedBase(map.base ?? StaticLinker.defaultBase, layout: layout)
        }

        let sectionItems = try placeSections(map, layout: layout)
        var items = sectionItems.map(\.item)
        let gotIndex = items.count
        items.append(Item(address: map.got?.address, size: max(layout.gotOrder.count, 1) * 8, alignment: 8, description: "the GOT"))
        let stubIndex = layout.stubOrder.isEmpty ? nil : items.count
        if stubIndex != nil {
            items.append(Item(address: map.stubs?.address, size: layout.stubOrder.count * architecture.stubSize,
                              alignment: architecture.stubAlignment, description: "the branch stubs"))
        }
        let moduleIndex = items.count
        items.append(Item(address: map.moduleStruct?.address, size: LinkJob.moduleStructure.size,
                          alignment: LinkJob.moduleStructure.alignment, description: "the struct module"))
        var commonIndices: [String: Int] = [:]
        for name in layout.commonOffsets.keys.sorted() {
            let definition = symbols.definition(named: name)!
            commonIndices[name] = items.count
            items.append(Item(address: map.commons[name]?.address, size: Int(definition.commonSize),
                              alignment: Int(definition.commonAlignment), description: "COMMON symbol '\(name)'"))
        }
        try placeRemaining(&items)
        try checkOverlaps(items)

        let base = items.map { $0.address! }.min()!
        let end = items.map { $0.address! + UInt64($0.size) }.max()!
        guard end - base <= UInt64(maximumImageSize) else {
            throw LoadError(.badLinkMap, file: objects[0].name,
                            "the link map spreads the image over 0x\(String(end - base, radix: 16)) bytes, more than the maximum of \(Self.describe(size: maximumImageSize)); place the sections closer together")
        }

        func offset(_ index: Int) -> Int { Int(items[index].address! - base) }
        for (index, placed) in sectionItems.enumerated() {
            layout.sectionOffsets[placed.object][placed.section] = offset(index)
        }
        layout.gotOffset = offset(gotIndex)
        if let stubIndex { layout.stubOffset = offset(stubIndex) }
        layout.moduleStructOffset = offset(moduleIndex)
        for (name, index) in commonIndices { layout.commonOffsets[name] = offset(index) }
        // Rounded up to a page, as the loader's own layout is, so that a map that ModKit wrote
        // reproduces the same image.
        let pageSize = UInt64(SystemCalls.pageSize)
        layout.totalSize = Int((end - base + pageSize - 1) & ~(pageSize - 1))
        layout.regions = []
        return base
    }

    /// Returns the map of `layout` at `base`: every placement, GOT entry and stub.
    func map(layout: ModuleLayout, base: UInt64) -> LinkMap {
        var map = LinkMap()
        map.base = base
        map.size = layout.totalSize
        for (objectIndex, object) in objects.enumerated() {
            for section in object.sections {
                guard let offset = layout.sectionOffsets[objectIndex][section.index] else { continue }
                map.sections.append(LinkMap.Section(address: base + UInt64(offset), size: section.size, file: object.name,
                                                    index: section.index, name: section.name))
            }
        }
        map.got = LinkMap.Span(address: base + UInt64(layout.gotOffset), size: max(layout.gotOrder.count, 1) * 8)
        for (slot, location) in layout.gotOrder.enumerated() {
            let object = objects[location.object]
            map.gotEntries.append(LinkMap.Entry(address: base + UInt64(layout.gotOffset + slot * 8), file: object.name,
                                                symbol: object.symbolName(location.index)))
        }
        if !layout.stubOrder.isEmpty {
            map.stubs = LinkMap.Span(address: base + UInt64(layout.stubOffset), size: layout.stubOrder.count * architecture.stubSize)
        }
        for (slot, location) in layout.stubOrder.enumerated() {
            let object = objects[location.object]
            map.stubEntries.append(LinkMap.Entry(address: base + UInt64(layout.stubOffset + slot * architecture.stubSize),
                                                 file: object.name, symbol: object.symbolName(location.index)))
        }
        map.moduleStruct = LinkMap.Span(address: base + UInt64(layout.moduleStructOffset), size: LinkJob.moduleStructure.size)
        for (name, offset) in layout.commonOffsets {
            map.commons[name] = LinkMap.Span(address: base + UInt64(offset), size: Int(symbols.definition(named: name)!.commonSize))
        }
        return map
    }

    // MARK: Steps

    /// Checks that ModKit's own layout can start at `base`: every section keeps its alignment,
    /// and the image is no larger than `maximumImageSize`.
    private func checkedBase(_ base: UInt64, layout: ModuleLayout) throws(LoadError) -> UInt64 {
        var alignment = SystemCalls.pageSize
        for object in objects {
            for section in object.sections where section.isAllocated { alignment = max(alignment, section.alignment) }
        }
        guard layout.totalSize <= maximumImageSize else {
            throw imageTooLarge(layout)
        }
        guard base % UInt64(alignment) == 0 else {
            throw LoadError(.badLinkMap, file: objects[0].name,
                            "base address 0x\(String(base, radix: 16)) is not aligned to \(alignment) bytes, the largest alignment of the page and the sections")
        }
        guard base <= UInt64.max - UInt64(layout.totalSize) else {
            throw LoadError(.badLinkMap, file: objects[0].name, "base address 0x\(String(base, radix: 16)) leaves no room for the image")
        }
        return base
    }

    /// Returns the error for a layout larger than `maximumImageSize`, naming its largest section.
    private func imageTooLarge(_ layout: ModuleLayout) -> LoadError {
        var largest: (object: ObjectFile, section: ObjectSection)?
        for (objectIndex, object) in objects.enumerated() {
            for section in object.sections where layout.sectionOffsets[objectIndex][section.index] != nil {
                if section.size > largest?.section.size ?? -1 { largest = (object, section) }
            }
        }
        let size = "the image would span 0x\(String(layout.totalSize, radix: 16)) bytes, more than the maximum of \(Self.describe(size: maximumImageSize))"
        guard let largest else { return LoadError(.outOfAddressSpace, file: objects[0].name, size) }
        return LoadError(.outOfAddressSpace, file: largest.object.name, section: largest.section.name,
                         "\(size); the largest section is 0x\(String(largest.section.size, radix: 16)) bytes")
    }

    /// `size` in GiB, MiB or bytes, whichever is whole.
    static func describe(size: Int) -> String {
        if size >= 1 << 30, size % (1 << 30) == 0 { return "\(size >> 30) GiB" }
        if size >= 1 << 20, size % (1 << 20) == 0 { return "\(size >> 20) MiB" }
        return "\(size) bytes"
    }

    /// Finds the map's address for every loaded section, and rejects lines that place nothing.
    private func placeSections(_ map: LinkMap, layout: ModuleLayout) throws(LoadError) -> [(object: Int, section: Int, item: Item)] {
        struct Key: Hashable {
            var file: String
            var index: Int
        }
        var lines: [Key: LinkMap.Section] = [:]
        for line in map.sections {
            guard lines.updateValue(line, forKey: Key(file: line.file, index: line.index)) == nil else {
                throw LoadError(.badLinkMap, file: line.file, section: line.name, "the link map places this section (index \(line.index)) twice")
            }
        }

        var placed: [(object: Int, section: Int, item: Item)] = []
        for (objectIndex, object) in objects.enumerated() {
            for section in object.sections where layout.sectionOffsets[objectIndex][section.index] != nil {
                guard let line = lines.removeValue(forKey: Key(file: object.name, index: section.index)) else {
                    throw LoadError(.badLinkMap, file: object.name, section: section.name,
                                    "the link map gives no address for this section (index \(section.index)); a map with section lines must place every loaded section")
                }
                guard line.address % UInt64(section.alignment) == 0 else {
                    throw LoadError(.badLinkMap, file: object.name, section: section.name,
                                    "the link map places this section at 0x\(String(line.address, radix: 16)), which is not aligned to its alignment of \(section.alignment) bytes")
                }
                placed.append((objectIndex, section.index,
                               Item(address: line.address, size: section.size, alignment: section.alignment,
                                    description: "\(object.name):(\(section.name))")))
            }
        }
        if let line = lines.values.first {
            throw LoadError(.badLinkMap, file: line.file, section: line.name,
                            "the link map places section \(line.index), which is not a loaded section of \(line.file)")
        }
        return placed
    }

    /// Places the items without an address after the highest one with an address.
    private func placeRemaining(_ items: inout [Item]) throws(LoadError) {
        var cursor = items.compactMap { item in item.address.map { $0 + UInt64(item.size) } }.max() ?? StaticLinker.defaultBase
        for index in items.indices {
            if let address = items[index].address {
                guard address <= UInt64.max - UInt64(items[index].size) - UInt64(maximumImageSize) else {
                    throw LoadError(.badLinkMap, file: objects[0].name,
                                    "the link map places \(items[index].description) at 0x\(String(address, radix: 16)), too close to the end of the address space")
                }
                guard address % UInt64(items[index].alignment) == 0 else {
                    throw LoadError(.badLinkMap, file: objects[0].name,
                                    "the link map places \(items[index].description) at 0x\(String(address, radix: 16)), which is not aligned to \(items[index].alignment) bytes")
                }
                continue
            }
            let alignment = UInt64(items[index].alignment)
            cursor = (cursor + alignment - 1) & ~(alignment - 1)
            items[index].address = cursor
            cursor += UInt64(items[index].size)
        }
    }

    private func checkOverlaps(_ items: [Item]) throws(LoadError) {
        let sorted = items.filter { $0.size > 0 }.sorted { $0.address! < $1.address! }
        for (first, second) in zip(sorted, sorted.dropFirst()) where first.address! + UInt64(first.size) > second.address! {
            throw LoadError(.badLinkMap, file: objects[0].name,
                            "the link map places \(first.description) at 0x\(String(first.address!, radix: 16)) (0x\(String(first.size, radix: 16)) bytes) and \(second.description) at 0x\(String(second.address!, radix: 16)), which overlap")
        }
    }
}
