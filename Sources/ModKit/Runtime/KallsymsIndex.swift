import Glibc

/// The lookup structures of a `KallsymsTable`, in flat buffers allocated once, so that a lookup
/// touches two or three cache lines and does no reference counting or bounds checks. The
/// owning table calls `deallocate()` when it goes away.
///
/// - Name to entry: open addressing over 16-byte slots. A slot contains 32 bits of the name's
///   hash, the entry number and where the name's bytes are. A probe reads one slot, and it
///   compares name bytes only when the hashes agree.
/// - Address to entry: the owner's range is cut into buckets, about two per symbol, and each
///   bucket records its first entry. A lookup searches only the entries of one bucket.
struct KallsymsIndex: @unchecked Sendable {
    private let count: Int
    private let names: UnsafePointer<UInt8>
    private let addresses: UnsafeMutablePointer<UInt64>
    private let sizes: UnsafeMutablePointer<UInt64>

    private struct Slot {
        /// The upper half of the name's hash above the entry number plus one, or 0 when empty.
        var tagAndEntry: UInt64
        /// The name's offset in `names` above its length.
        var offsetAndLength: UInt64
    }

    private let slots: UnsafeMutablePointer<Slot>
    private let slotMask: Int

    private let start: UInt64
    private let end: UInt64
    private let bucketShift: UInt64
    /// For each bucket, the first entry at or above the bucket's first address; one more
    /// element than there are buckets, holding `count`.
    private let bucketFirst: UnsafeMutablePointer<UInt32>

    /// Builds the index of `entries`, which are sorted by address and lie in `start..<end`.
    /// `isGlobal(i)` returns whether entry `i` wins a name shared with a local symbol.
    init(entries: [KallsymsTable.Entry], names: UnsafePointer<UInt8>, start: UInt64, end: UInt64, isGlobal: (Int) -> Bool) {
        count = entries.count
        self.names = names
        self.start = start
        self.end = end
        addresses = Self.allocate(max(count, 1))
        sizes = Self.allocate(max(count, 1))
        for (position, entry) in entries.enumerated() {
            addresses[position] = entry.address
            sizes[position] = entry.size
        }

        var capacity = 16
        while capacity < count * 2 { capacity <<= 1 }
        slots = Self.allocate(capacity)
        slots.initialize(repeating: Slot(tagAndEntry: 0, offsetAndLength: 0), count: capacity)
        slotMask = capacity - 1

        let span = end > start ? end - start : 1
        var shift: UInt64 = 0
        while span >> shift > UInt64(max(count, 1)) * 2 { shift += 1 }
        bucketShift = shift
        let bucketCount = Int(span >> shift) + 1
        bucketFirst = Self.allocate(bucketCount + 1)

        var entry = 0
        for bucket in 0 ... bucketCount {
            while entry < count && (addresses[entry] - start) >> shift < UInt64(bucket) { entry += 1 }
            bucketFirst[bucket] = UInt32(entry)
        }
        for (position, entry) in entries.enumerated() {
            insertName(position, offset: entry.nameOffset, length: Int(entry.nameLength), isGlobal: isGlobal)
        }
    }

    /// Frees the buffers. The index must not be used afterwards.
    func deallocate() {
        free(addresses)
        free(sizes)
        free(slots)
        free(bucketFirst)
    }

    /// Allocates room for `count` values, freed with `free`. A buffer of 2 MiB or more is
    /// aligned to 2 MiB and offered to the kernel for transparent huge pages, because random
    /// lookups in a large table otherwise miss the TLB on most reads.
    static func allocate<T>(_ count: Int) -> UnsafeMutablePointer<T> {
        let hugePage = 2 << 20
        let size = count * MemoryLayout<T>.stride
        var memory: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, size >= hugePage ? hugePage : 64, size) == 0, let memory else {
            fatalError("kallsyms: cannot allocate \(size) bytes for the lookup index")
        }
        if size >= hugePage { _ = madvise(memory, size, MADV_HUGEPAGE) }
        return memory.bindMemory(to: T.self, capacity: count)
    }

    // MARK: Names

    /// The address of entry `position`, which must be below the entry count.
    @inline(__always)
    func address(at position: Int) -> UInt64 { addresses[position] }

    /// Adds entry `position` under its name. Entries arrive by address, so among symbols of
    /// one name the lowest address stays, unless a later one is global and it is not.
    private func insertName(_ position: Int, offset: UInt32, length: Int, isGlobal: (Int) -> Bool) {
        let name = names + Int(offset)
        let hash = Self.hash(name, length)
        let new = Slot(tagAndEntry: (hash & 0xffff_ffff_0000_0000) | UInt64(position + 1),
                       offsetAndLength: UInt64(offset) << 32 | UInt64(length))
        var slot = Int(truncatingIfNeeded: hash) & slotMask
        while slots[slot].tagAndEntry != 0 {
            let existing = Int(truncatingIfNeeded: slots[slot].tagAndEntry & 0xffff_ffff) - 1
            if matches(slots[slot], hash: hash, name, length) {
                if !isGlobal(existing) && isGlobal(position) { slots[slot] = new }
                return
            }
            slot = (slot + 1) & slotMask
        }
        slots[slot] = new
    }

    /// Returns the entry named by the `length` bytes at `name`, or nil.
    @inline(__always)
    func entry(named name: UnsafePointer<UInt8>, length: Int) -> Int? {
        let hash = Self.hash(name, length)
        var slot = Int(truncatingIfNeeded: hash) & slotMask
        while true {
            let value = slots[slot]
            if value.tagAndEntry == 0 { return nil }
            if matches(value, hash: hash, name, length) { return Int(truncatingIfNeeded: value.tagAndEntry & 0xffff_ffff) - 1 }
            slot = (slot + 1) & slotMask
        }
    }

    /// Returns whether `slot` contains the name of `length` bytes at `name`, whose hash is `hash`.
    @inline(__always)
    private func matches(_ slot: Slot, hash: UInt64, _ name: UnsafePointer<UInt8>, _ length: Int) -> Bool {
        guard slot.tagAndEntry >> 32 == hash >> 32, Int(truncatingIfNeeded: slot.offsetAndLength & 0xffff_ffff) == length else {
            return false
        }
        return Self.equal(names + Int(truncatingIfNeeded: slot.offsetAndLength >> 32), name, length)
    }

    /// Returns whether the `length` bytes at `first` and at `second` are the same. Names of
    /// eight bytes or more are compared a word at a time, the last word overlapping the one
    /// before it, with one branch at the end.
    @inline(__always)
    static func equal(_ first: UnsafePointer<UInt8>, _ second: UnsafePointer<UInt8>, _ length: Int) -> Bool {
        guard length >= 8 else { return memcmp(first, second, length) == 0 }
        let first = UnsafeRawPointer(first)
        let second = UnsafeRawPointer(second)
        var difference: UInt64 = 0
        var offset = 0
        while offset + 8 < length {
            difference |= first.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                ^ second.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        difference |= first.loadUnaligned(fromByteOffset: length - 8, as: UInt64.self)
            ^ second.loadUnaligned(fromByteOffset: length - 8, as: UInt64.self)
        return difference == 0
    }

    /// Returns a 64-bit hash of the `length` bytes at `bytes`. Each step mixes in eight bytes
    /// with one multiplication, and the last eight bytes overlap the step before, so no byte is
    /// read outside the name and no byte loop runs for names of four bytes or more.
    @inline(__always)
    static func hash(_ bytes: UnsafePointer<UInt8>, _ length: Int) -> UInt64 {
        let raw = UnsafeRawPointer(bytes)
        var hash = 0x9e37_79b9_7f4a_7c15 ^ UInt64(truncatingIfNeeded: length)
        if length >= 8 {
            var offset = 0
            while offset + 8 < length {
                hash = step(hash, raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                offset += 8
            }
            hash = step(hash, raw.loadUnaligned(fromByteOffset: length - 8, as: UInt64.self))
        } else if length >= 4 {
            let low = UInt64(raw.loadUnaligned(as: UInt32.self))
            let high = UInt64(raw.loadUnaligned(fromByteOffset: length - 4, as: UInt32.self))
            hash = step(hash, low | high << 32)
        } else if length > 0 {
            let first = UInt64(bytes[0])
            let middle = UInt64(bytes[length >> 1])
            let last = UInt64(bytes[length - 1])
            hash = step(hash, first | middle << 8 | last << 16)
        }
        return mix(hash)
    }

    @inline(__always)
    private static func step(_ hash: UInt64, _ word: UInt64) -> UInt64 {
        let product = (hash ^ word) &* 0x9fb2_1c65_1e98_df25
        return product ^ (product >> 32)
    }

    @inline(__always)
    private static func mix(_ value: UInt64) -> UInt64 {
        var value = value &* 0xbf58_476d_1ce4_e5b9
        value ^= value >> 31
        value = value &* 0x94d0_49bb_1331_11eb
        return value ^ (value >> 29)
    }

    // MARK: Addresses

    /// Returns the entry whose range contains `address`, or nil.
    @inline(__always)
    func entry(containing address: UInt64) -> Int? {
        guard start <= address, address < end, count > 0 else { return nil }
        let bucket = Int(truncatingIfNeeded: (address - start) >> bucketShift)
        var low = Int(bucketFirst[bucket])
        var remaining = Int(bucketFirst[bucket + 1]) - low
        // The last entry at or below `address` is in this bucket, or it is the entry just
        // before the bucket's first one.
        while remaining > 0 {
            let half = remaining >> 1
            if addresses[low + half] <= address {
                low += half + 1
                remaining -= half + 1
            } else {
                remaining = half
            }
        }
        guard low > 0 else { return nil }
        let found = low - 1
        return address - addresses[found] < sizes[found] ? found : nil
    }
}
