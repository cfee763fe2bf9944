/// The relocated image of a link at fixed addresses, and the map of where everything went.
public struct StaticLink: Sendable {
    /// The bytes from `map.base` to `map.base + map.size`: every loaded section, the GOT, the
    /// branch stubs and zero-filled gaps, as they would be in memory.
    public var image: [UInt8]
    public var map: LinkMap
}

/// Runs the linker of the loader (validate, lay out, resolve, relocate) on a plain buffer at
/// fixed addresses, for any supported architecture. Nothing is mapped, loaded or run, so
/// the result can be compared with another linker's output.
public enum StaticLinker {
    /// The base address when the map gives none: low enough for objects that store absolute
    /// 32-bit addresses.
    public static let defaultBase: UInt64 = 0x1000_0000

    /// Undefined symbols that the map gives no address get one 16-byte slot each, from this far
    /// past the end of the image.
    static let symbolGap: UInt64 = 0x10000

    /// The largest image `modkit link` writes: 1 GiB.
    public static let maximumImageSize = 1 << 30

    /// Links `images` as one module for `machine`, taking every address the map gives and
    /// choosing the rest. Returns the image and the complete map. A layout or map that spans more
    /// than `maximumImageSize` bytes fails.
    public static func link(_ images: [ObjectImage], machine: Machine, map: LinkMap,
                            maximumImageSize: Int = StaticLinker.maximumImageSize) throws(LoadError) -> StaticLink {
        guard !images.isEmpty else { throw LoadError(.noObjects, file: "", "no object files given") }
        var objects: [ObjectFile] = []
        for image in images { objects.append(try ObjectFile(image)) }
        for object in objects where object.machine != machine {
            throw LoadError(.machineMismatch, file: object.name,
                            "object is for \(object.machine.rawValue), but the link target is \(machine.rawValue)")
        }
        if let target = map.target, target != machine {
            throw LoadError(.badLinkMap, file: objects[0].name,
                            "the link map is for \(target.rawValue), but the link target is \(machine.rawValue)")
        }
        guard let architecture = relocationArchitecture(for: machine) else {
            throw LoadError(.unsupportedMachine, file: objects[0].name, "this build cannot link objects for \(machine.rawValue)")
        }

        let symbols = try ModuleSymbols(objects: objects)
        var layout = try ModuleLayout(objects: objects, symbols: symbols, architecture: architecture,
                                      moduleStruct: LinkJob.moduleStructure)
        let placement = FixedPlacement(objects: objects, symbols: symbols, architecture: architecture,
                                       maximumImageSize: maximumImageSize)
        let base = try placement.apply(map, to: &layout)

        let externals = chooseSymbolAddresses(symbols, map: map, imageEnd: base + UInt64(layout.totalSize))
        let resolver = SymbolResolver(lookupExports: { Array(repeating: nil, count: $0.count) }, hostSymbols: externals, processPolicy: .deny)
        var resolved = try resolver.resolve(objects: objects, symbols: symbols, layout: layout, base: base)
        // The map's symbols are plain addresses, not the host's or another module's, and the
        // placement is fixed, so range errors carry no advice about -fPIC or the low zone.
        resolved.externalOrigins = resolved.externalOrigins.map { _ in nil }
        layout.zone = .near

        let relocator = Relocator(objects: objects, symbols: symbols, layout: layout, resolved: resolved,
                                  architecture: architecture, base: base)
        try relocator.check()
        // The relocations go straight into the returned array: an image may be up to 1 GiB.
        var bytes = [UInt8](repeating: 0, count: layout.totalSize)
        var failure: LoadError?
        bytes.withUnsafeMutableBytes { buffer in
            let image = LinkImage(base: base, bytes: buffer)
            relocator.copySections(into: image)
            do throws(LoadError) { try relocator.apply(into: image) } catch { failure = error }
        }
        if let failure { throw failure }

        var result = placement.map(layout: layout, base: base)
        result.target = machine
        for name in symbols.undefinedNames {
            result.symbols[name] = resolved.externalAddress(name, objects: objects)
        }
        return StaticLink(image: bytes, map: result)
    }

    /// Returns the address of every undefined symbol: the map's, or a free slot past the image.
    private static func chooseSymbolAddresses(_ symbols: ModuleSymbols, map: LinkMap, imageEnd: UInt64) -> [String: UInt64] {
        var addresses: [String: UInt64] = [:]
        var next = (imageEnd &+ symbolGap &+ 0xffff) & ~0xffff
        for name in symbols.undefinedNames.sorted() {
            if let address = map.symbols[name] {
                addresses[name] = address
            } else {
                addresses[name] = next
                next &+= 16
            }
        }
        return addresses
    }
}

extension ResolvedSymbols {
    /// Returns the address an undefined global symbol resolved to, from the first object that names it.
    func externalAddress(_ name: String, objects: [ObjectFile]) -> UInt64 {
        for (objectIndex, object) in objects.enumerated() {
            for (index, symbol) in object.symbols.enumerated() where !symbol.isLocal && object.symbolName(index) == name {
                return addresses[objectIndex][index]
            }
        }
        return 0
    }
}

/// A buffer standing in for module memory at `base`.
struct LinkImage: LinkTarget {
    let base: UInt64
    let bytes: UnsafeMutableRawBufferPointer

    func pointer(_ address: UInt64) -> UnsafeMutableRawPointer {
        precondition(address >= base && address - base <= UInt64(bytes.count), "address 0x\(String(address, radix: 16)) is outside the image")
        return bytes.baseAddress! + Int(address - base)
    }

    var spans: [(start: UInt64, size: Int)] {
        [(base, bytes.count)]
    }
}
