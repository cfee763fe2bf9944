/// A copy of a module's memory as relocation left it, before any of its code ran, with every
/// input that decided its bytes besides the cached objects and layout: the base address and
/// the address of each undefined global.
///
/// Relocation is a function of the objects, the layout, the base and those addresses alone, so
/// a later load of the same objects with the same base and the same addresses would write
/// exactly these bytes. That load copies them instead, as prelink let the dynamic linker skip
/// relocating a library that landed at its preferred address.
final class LinkedImage: @unchecked Sendable {
    let base: UInt64
    /// The address of each name of `ModuleSymbols.undefinedNames`.
    let externals: [UInt64]
    /// The address of every symbol table entry of every object.
    let symbolAddresses: [[UInt64]]
    let metadata: ModuleMetadata
    /// The module's kallsyms table, which depends on the same inputs.
    let kallsymsTable: KallsymsTable
    /// The regions the bytes were copied from, each to its page end.
    private let spans: [(start: UInt64, size: Int)]
    private let bytes: UnsafeMutableRawPointer
    let byteCount: Int

    /// Copies the regions of `memory`, which relocation has just written.
    init(memory: ModuleMemory, externals: [UInt64], symbolAddresses: [[UInt64]], metadata: ModuleMetadata,
         kallsymsTable: KallsymsTable) {
        base = memory.base
        self.externals = externals
        self.symbolAddresses = symbolAddresses
        self.metadata = metadata
        self.kallsymsTable = kallsymsTable
        spans = memory.spans
        byteCount = spans.reduce(0) { $0 + $1.size }
        bytes = .allocate(byteCount: max(byteCount, 1), alignment: 64)
        var offset = 0
        for span in spans {
            (bytes + offset).copyMemory(from: memory.pointer(span.start), byteCount: span.size)
            offset += span.size
        }
    }

    deinit { bytes.deallocate() }

    /// Returns whether a load that placed the module at `base` and resolved its undefined
    /// globals to `externals` would relocate it into these bytes.
    func matches(base: UInt64, externals: [UInt64]) -> Bool {
        self.base == base && self.externals == externals
    }

    /// Writes the saved bytes into `memory`, which must have the regions they were copied from.
    func copy(into memory: ModuleMemory) {
        let target = memory.spans
        precondition(target.elementsEqual(spans) { $0.start == $1.start && $0.size == $1.size },
                     "a linked image was copied into memory of another layout")
        var offset = 0
        for span in spans {
            memory.pointer(span.start).copyMemory(from: bytes + offset, byteCount: span.size)
            offset += span.size
        }
    }
}
