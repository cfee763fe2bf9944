import Glibc

/// A placed region of a module's memory.
public struct Region: Sendable {
    public var kind: RegionKind
    public var start: UInt64
    /// Bytes used; the mapping extends to the next page boundary.
    public var size: Int
    public var mappedSize: Int {
        (size + SystemCalls.pageSize - 1) & ~(SystemCalls.pageSize - 1)
    }
}

/// The memory of one module: a span of the module area split into regions by protection.
///
/// It is writable only between `makeWritable` and `applyFinalProtections` (in Protect/);
/// afterwards no page of it is writable and executable at once.
final class ModuleMemory {
    let span: AreaSpan
    private(set) var regions: [Region]
    private var released = false

    /// Reserves a span for `layout`, at `preferredStart` when those pages are free.
    init(layout: ModuleLayout, file: String, preferredStart: UInt64? = nil) throws(LoadError) {
        let span: AreaSpan
        do {
            span = try ModuleArea.shared.allocate(size: layout.totalSize, zone: layout.zone, preferredStart: preferredStart)
        } catch {
            throw LoadError(error.kind, file: file, error.message)
        }
        self.span = span
        regions = layout.regions.map { Region(kind: $0.kind, start: span.start + UInt64($0.offset), size: $0.size) }
    }

    var base: UInt64 { span.start }

    func pointer(_ address: UInt64) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: UInt(address))!
    }

    /// Returns the init regions to the module area after a successful init.
    func releaseInitRegions() {
        let initRegions = regions.filter { $0.kind.isInit }
        guard let first = initRegions.first else { return }
        let start = first.start
        let end = initRegions.map { $0.start + UInt64($0.mappedSize) }.max()!
        ModuleArea.shared.release(AreaSpan(start: start, size: Int(end - start)))
        regions.removeAll { $0.kind.isInit }
    }

    /// Returns all of the module's memory to the area. Safe to call more than once.
    func release() {
        guard !released else { return }
        released = true
        // Init regions were already returned on success; give back only what is still held.
        let end = regions.map { $0.start + UInt64($0.mappedSize) }.max() ?? span.start
        let heldEnd = regions.contains { $0.kind.isInit } ? span.end : max(end, span.start)
        if heldEnd > span.start {
            ModuleArea.shared.release(AreaSpan(start: span.start, size: Int(heldEnd - span.start)))
        }
        regions = []
    }

    /// The region containing `address`, if any.
    func region(containing address: UInt64) -> Region? {
        regions.first { $0.start <= address && address < $0.start + UInt64($0.mappedSize) }
    }

    deinit { release() }
}
