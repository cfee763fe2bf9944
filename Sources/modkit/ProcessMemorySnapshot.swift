import Glibc

/// Reads this process's memory mappings (`/proc/self/maps`) and resident set size into buffers
/// allocated once, so that taking a snapshot allocates nothing: a malloc arena that grew for one
/// reading would show up as a change in the next.
///
/// The resident set size is the `Rss` line of `/proc/self/smaps_rollup`, which the kernel
/// counts page by page when the file is read. It is what `VmRSS` in `/proc/self/status`
/// shows, but since Linux 6.2 `VmRSS` reads per-CPU counters without summing their pending
/// updates, so it can be some pages per CPU off.
final class ProcessMemorySnapshot {
    /// The raw bytes of `/proc/self/maps`.
    private let maps = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 16)
    private var mapsCount = 0
    /// The previous reading, for checking that two readings in a row agree.
    private let previous = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 16)
    private var previousCount = 0
    private let rollup = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)

    /// The number of lines of `/proc/self/maps` at the last `take()`.
    private(set) var mapsLines = 0
    /// The resident set size in KiB at the last `take()`.
    private(set) var residentKiB = 0

    deinit {
        maps.deallocate()
        previous.deallocate()
        rollup.deallocate()
    }

    /// Reads both files. The kernel builds `/proc/self/maps` a page at a time, so a reading that
    /// races with a mapping change can miss lines: this reads it until two readings in a row
    /// agree, at most 100 times.
    func take() {
        previousCount = Self.read("/proc/self/maps", into: previous)
        for _ in 0 ..< 100 {
            mapsCount = Self.read("/proc/self/maps", into: maps)
            if mapsCount == previousCount && memcmp(maps.baseAddress!, previous.baseAddress!, mapsCount) == 0 { break }
            previousCount = Self.read("/proc/self/maps", into: previous)
        }
        mapsLines = UnsafeRawBufferPointer(rebasing: maps[..<mapsCount]).reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        residentKiB = Self.residentKiB(in: UnsafeRawBufferPointer(rebasing: rollup[..<Self.read("/proc/self/smaps_rollup", into: rollup)]))
    }

    /// The lines of the last maps reading, for reporting what changed. This allocates.
    var lines: [String] {
        String(decoding: UnsafeRawBufferPointer(rebasing: maps[..<mapsCount]), as: UTF8.self)
            .split(separator: "\n").map(String.init)
    }

    /// Reads the whole file into `buffer` and returns the number of bytes read, or 0 if it
    /// cannot be opened.
    private static func read(_ path: String, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return 0 }
        defer { close(descriptor) }
        var count = 0
        while count < buffer.count {
            let result = Glibc.read(descriptor, buffer.baseAddress! + count, buffer.count - count)
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { break }
            count += result
        }
        return count
    }

    /// Returns the number in the line `Rss:    1234 kB`, or 0 if there is none.
    private static func residentKiB(in status: UnsafeRawBufferPointer) -> Int {
        let key = Array("\nRss:".utf8)
        guard status.count > key.count else { return 0 }
        for start in 0 ..< status.count - key.count where status[start] == key[0] {
            guard (0 ..< key.count).allSatisfy({ status[start + $0] == key[$0] }) else { continue }
            var value = 0
            var index = start + key.count
            while index < status.count, status[index] == UInt8(ascii: " ") || status[index] == UInt8(ascii: "\t") { index += 1 }
            while index < status.count, status[index] >= UInt8(ascii: "0"), status[index] <= UInt8(ascii: "9") {
                value = value * 10 + Int(status[index] - UInt8(ascii: "0"))
                index += 1
            }
            return value
        }
        return 0
    }
}
