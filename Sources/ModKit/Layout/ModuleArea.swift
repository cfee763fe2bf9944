import Glibc

/// A page-aligned span of the module area handed to one module.
public struct AreaSpan: Sendable, Equatable {
    public var start: UInt64
    public var size: Int
    public var end: UInt64 { start + UInt64(size) }

    /// Returns whether the `size` bytes at `address` lie within the span.
    func contains(_ address: UInt64, size: Int) -> Bool {
        start <= address && address <= end && UInt64(size) <= end - address
    }
}

/// The address range reserved for all modules of the process: the userspace counterpart of the
/// kernel's module range.
///
/// Reserving one range up front (inaccessible, no memory committed) keeps every module within
/// +-2 GiB of every other, which x86_64 `PC32` and `PLT32` need. The near zone is placed next to
/// the host executable where the address space allows; the low zone, below 2 GiB, is reserved on
/// first use for objects built without `-fPIC` that store absolute 32-bit addresses.
public final class ModuleArea: Sendable {
    public enum Zone: String, Sendable {
        case near
        case low
    }

    public static let shared = ModuleArea()

    /// Size of the near zone. Reserving costs address space only.
    static let nearZoneSize = 1 << 30
    static let lowZoneSize = 256 << 20
    /// The low zone must end here so that `R_X86_64_32S` (sign-extended) addresses fit too.
    static let lowZoneLimit: UInt64 = 0x8000_0000

    private struct ZoneState {
        var range: AreaSpan
        /// Free spans, sorted by address, coalesced.
        var free: [AreaSpan]
    }

    private struct State {
        var near: ZoneState?
        var low: ZoneState?
        /// Released spans whose pages are kept, inaccessible, for the next module of that zone.
        var warm: [(zone: Zone, span: AreaSpan)] = []
        var warmBytes = 0
    }

    /// How much released memory stays committed for reuse. Reusing pages spares the page
    /// faults of fresh memory, which dominate the cost of loading a module again.
    static let warmLimit = 64 << 20
    static let warmSpanLimit = 16

    private let state = LockedValue(State())

    /// Reserves a span of `size` bytes (rounded up to pages) in `zone`, starting at
    /// `preferredStart` when those pages are free.
    public func allocate(size: Int, zone: Zone, preferredStart: UInt64? = nil) throws(LoadError) -> AreaSpan {
        let pageSize = SystemCalls.pageSize
        let rounded = (size + pageSize - 1) & ~(pageSize - 1)
        let result: Result<AreaSpan, LoadError> = state.withLock { state in
            if let span = Self.takeWarm(rounded, zone: zone, preferredStart: preferredStart, from: &state) { return .success(span) }
            do throws(LoadError) {
                switch zone {
                case .near:
                    if state.near == nil { state.near = try Self.reserveNearZone() }
                    return .success(try Self.take(rounded, from: &state.near!, zone: zone, preferredStart: preferredStart))
                case .low:
                    if state.low == nil { state.low = try Self.reserveLowZone() }
                    return .success(try Self.take(rounded, from: &state.low!, zone: zone, preferredStart: preferredStart))
                }
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Returns `span` to the area. Its pages are replaced by inaccessible, uncommitted ones, so a
    /// stale pointer into a removed module faults instead of running old code.
    public func release(_ span: AreaSpan) {
        if keepWarm(span) { return }
        if case .failure = SystemCalls.resetToReserved(span.start, size: span.size) {
            // Without fresh pages the old ones stay committed, but they must not stay usable.
            guard case .success = SystemCalls.protect(span.start, size: span.size, protection: PROT_NONE) else {
                // Unmapping, the last resort, leaves a hole in the zone that other mappings may
                // take, so the span is leaked rather than handed out again. If even munmap fails,
                // the span stays leaked with its old protections.
                _ = SystemCalls.unmap(span.start, size: span.size)
                return
            }
        }
        state.withLock { state in
            if let near = state.near, near.range.start <= span.start, span.end <= near.range.end {
                Self.give(span, to: &state.near!)
            } else if let low = state.low, low.range.start <= span.start, span.end <= low.range.end {
                Self.give(span, to: &state.low!)
            }
        }
    }

    /// Makes `span` inaccessible and keeps its pages for reuse, within the warm limit.
    private func keepWarm(_ span: AreaSpan) -> Bool {
        let zone: Zone? = state.withLock { state in
            guard state.warmBytes + span.size <= Self.warmLimit, state.warm.count < Self.warmSpanLimit else { return nil }
            if let near = state.near, near.range.start <= span.start, span.end <= near.range.end { return .near }
            if let low = state.low, low.range.start <= span.start, span.end <= low.range.end { return .low }
            return nil
        }
        guard let zone, case .success = SystemCalls.protect(span.start, size: span.size, protection: PROT_NONE) else { return false }
        state.withLock { state in
            state.warmBytes += span.size
            Self.addWarm(span, zone: zone, to: &state)
        }
        return true
    }

    /// Adds `span` to the warm spans, joined with a warm span that ends where it starts or
    /// starts where it ends. A module whose init regions were released before the rest of it
    /// thus leaves one span that fits it again, at the same address.
    private static func addWarm(_ span: AreaSpan, zone: Zone, to state: inout State) {
        var joined = span
        if let before = state.warm.firstIndex(where: { $0.zone == zone && $0.span.end == joined.start }) {
            joined = AreaSpan(start: state.warm[before].span.start, size: state.warm[before].span.size + joined.size)
            state.warm.remove(at: before)
        }
        if let after = state.warm.firstIndex(where: { $0.zone == zone && $0.span.start == joined.end }) {
            joined.size += state.warm[after].span.size
            state.warm.remove(at: after)
        }
        state.warm.append((zone, joined))
    }

    /// Takes `size` bytes at `preferredStart` from the warm span of `zone` that contains them,
    /// or else from the start of the smallest warm span that fits, and releases the rest of it.
    private static func takeWarm(_ size: Int, zone: Zone, preferredStart: UInt64?, from state: inout State) -> AreaSpan? {
        let candidates = state.warm.indices.filter { state.warm[$0].zone == zone && state.warm[$0].span.size >= size }
        var start: UInt64?
        var chosen = candidates.min { state.warm[$0].span.size < state.warm[$1].span.size }
        if let preferredStart, let containing = candidates.first(where: { state.warm[$0].span.contains(preferredStart, size: size) }) {
            chosen = containing
            start = preferredStart
        }
        guard let index = chosen else { return nil }
        let span = state.warm.remove(at: index).span
        state.warmBytes -= span.size
        let taken = AreaSpan(start: start ?? span.start, size: size)
        for rest in [AreaSpan(start: span.start, size: Int(taken.start - span.start)),
                     AreaSpan(start: taken.end, size: Int(span.end - taken.end))] where rest.size > 0 {
            if case .failure = SystemCalls.resetToReserved(rest.start, size: rest.size) {
                // Still inaccessible from keepWarm; only its memory stays committed.
            }
            switch zone {
            case .near: give(rest, to: &state.near!)
            case .low: give(rest, to: &state.low!)
            }
        }
        return taken
    }

    /// Releases every warm span's memory; for tests that compare memory use.
    public func dropWarmPages() {
        let spans: [AreaSpan] = state.withLock { state in
            defer { state.warm = []; state.warmBytes = 0 }
            return state.warm.map(\.span)
        }
        for span in spans {
            _ = SystemCalls.resetToReserved(span.start, size: span.size)
            state.withLock { state in
                if let near = state.near, near.range.start <= span.start, span.end <= near.range.end {
                    Self.give(span, to: &state.near!)
                } else if state.low != nil {
                    Self.give(span, to: &state.low!)
                }
            }
        }
    }

    /// The reserved zones, for information output and tests.
    public var zones: [(zone: Zone, range: AreaSpan)] {
        state.withLock { state in
            var result: [(Zone, AreaSpan)] = []
            if let near = state.near { result.append((.near, near.range)) }
            if let low = state.low { result.append((.low, low.range)) }
            return result
        }
    }

    private static func take(_ size: Int, from zone: inout ZoneState, zone name: Zone, preferredStart: UInt64?) throws(LoadError) -> AreaSpan {
        if let preferredStart, let index = zone.free.firstIndex(where: { $0.contains(preferredStart, size: size) }) {
            let free = zone.free.remove(at: index)
            let taken = AreaSpan(start: preferredStart, size: size)
            let pieces = [AreaSpan(start: free.start, size: Int(taken.start - free.start)),
                          AreaSpan(start: taken.end, size: Int(free.end - taken.end))]
            zone.free.insert(contentsOf: pieces.filter { $0.size > 0 }, at: index)
            return taken
        }
        guard let index = zone.free.firstIndex(where: { $0.size >= size }) else {
            throw LoadError(.outOfAddressSpace, file: "",
                            "module area (\(name.rawValue) zone, \(zone.range.size >> 20) MiB) has no free span of \(size) bytes; remove modules first")
        }
        let span = AreaSpan(start: zone.free[index].start, size: size)
        zone.free[index].start += UInt64(size)
        zone.free[index].size -= size
        if zone.free[index].size == 0 { zone.free.remove(at: index) }
        return span
    }

    private static func give(_ span: AreaSpan, to zone: inout ZoneState) {
        let index = zone.free.firstIndex { $0.start > span.start } ?? zone.free.endIndex
        zone.free.insert(span, at: index)
        if index + 1 < zone.free.count, zone.free[index].end == zone.free[index + 1].start {
            zone.free[index].size += zone.free[index + 1].size
            zone.free.remove(at: index + 1)
        }
        if index > 0, zone.free[index - 1].end == zone.free[index].start {
            zone.free[index - 1].size += zone.free[index].size
            zone.free.remove(at: index)
        }
    }

    private static func reserve(at hint: UInt64?, size: Int) -> Result<UInt64, Errno> {
        SystemCalls.mapAnonymous(at: hint, size: size, protection: PROT_NONE, fixedNoReplace: hint != nil, noReserve: true)
    }

    /// Reserves the near zone just below the host executable, within 2 GiB of its code, or
    /// wherever the kernel places it when that range is taken.
    private static func reserveNearZone() throws(LoadError) -> ZoneState {
        let size = nearZoneSize
        let executable = hostCodeAddress()
        let alignment: UInt64 = 2 << 20
        if executable > UInt64(size) * 2 {
            var hint = (executable & ~(alignment - 1)) - UInt64(size) - alignment
            for _ in 0 ..< 8 where hint > 0 {
                if case .success(let address) = reserve(at: hint, size: size) {
                    return ZoneState(range: AreaSpan(start: address, size: size), free: [AreaSpan(start: address, size: size)])
                }
                hint -= UInt64(size / 2)
            }
        }
        switch reserve(at: nil, size: size) {
        case .success(let address):
            return ZoneState(range: AreaSpan(start: address, size: size), free: [AreaSpan(start: address, size: size)])
        case .failure(let error):
            throw LoadError(.outOfAddressSpace, file: "", "cannot reserve the module area (\(size >> 20) MiB): mmap failed: \(error); check the address space limit (ulimit -v)")
        }
    }

    /// An address in the code that embeds ModKit (the host executable when ModKit is linked in
    /// statically, as SwiftPM does).
    private static func hostCodeAddress() -> UInt64 {
        let anchor: @convention(c) () -> Void = {}
        return UInt64(UInt(bitPattern: unsafeBitCast(anchor, to: UnsafeRawPointer.self)))
    }

    private static func reserveLowZone() throws(LoadError) -> ZoneState {
        let size = lowZoneSize
        var hint: UInt64 = 0x1000_0000
        while hint + UInt64(size) <= lowZoneLimit {
            if case .success(let address) = reserve(at: hint, size: size) {
                if address + UInt64(size) <= lowZoneLimit {
                    return ZoneState(range: AreaSpan(start: address, size: size), free: [AreaSpan(start: address, size: size)])
                }
                _ = SystemCalls.unmap(address, size: size)
            }
            hint += UInt64(size)
        }
        throw LoadError(.outOfAddressSpace, file: "",
                        "cannot reserve module memory below 2 GiB for an object that uses absolute 32-bit addresses; rebuild it with -fPIC")
    }
}
