import Glibc

/// Cycles and calls counted by `modkit stress`.
struct StressCounts: Equatable {
    /// Load and removal cycles completed.
    var cycles = 0
    /// Calls that ran the command, whatever status it returned.
    var ran = 0
    /// Calls that found the module initializing, going away or not loaded, and did not run.
    var failed = 0
}

/// A message from the `modkit stress` worker process to its parent, sent over a pipe as one
/// line of text.
enum StressRecord: Equatable {
    /// The counts so far, sent periodically so that the parent has them if the worker dies.
    case progress(StressCounts)
    /// The memory before the first measured load: lines of `/proc/self/maps` and the resident
    /// set size in KiB.
    case baseline(mapsLines: Int, residentKiB: Int)
    /// The end of the run: the final counts and the change of maps lines and of the resident set
    /// size in KiB.
    case finished(StressCounts, mapsDelta: Int, residentDeltaKiB: Int)

    /// The record as a line without the newline: `progress 10 200 3`.
    var line: String {
        switch self {
        case .progress(let counts):
            "progress \(counts.cycles) \(counts.ran) \(counts.failed)"
        case .baseline(let mapsLines, let residentKiB):
            "baseline \(mapsLines) \(residentKiB)"
        case .finished(let counts, let mapsDelta, let residentDeltaKiB):
            "finished \(counts.cycles) \(counts.ran) \(counts.failed) \(mapsDelta) \(residentDeltaKiB)"
        }
    }

    /// Parses a line that `line` produced, or returns nil.
    init?(line: Substring) {
        let words = line.split(separator: " ")
        let numbers = words.dropFirst().compactMap { Int($0) }
        guard let kind = words.first, numbers.count == words.count - 1 else { return nil }
        switch (kind, numbers.count) {
        case ("progress", 3):
            self = .progress(StressCounts(cycles: numbers[0], ran: numbers[1], failed: numbers[2]))
        case ("baseline", 2):
            self = .baseline(mapsLines: numbers[0], residentKiB: numbers[1])
        case ("finished", 5):
            self = .finished(StressCounts(cycles: numbers[0], ran: numbers[1], failed: numbers[2]),
                             mapsDelta: numbers[3], residentDeltaKiB: numbers[4])
        default:
            return nil
        }
    }

    /// Writes the record and a newline to `descriptor`. A line is far shorter than `PIPE_BUF`,
    /// so the write is atomic. A failed write is ignored: the parent is gone.
    func send(to descriptor: Int32) {
        let bytes = Array((line + "\n").utf8)
        while bytes.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) < 0 && errno == EINTR {}
    }
}

/// Splits the bytes read from the worker's pipe into records.
struct StressRecordReader {
    private var pending: [UInt8] = []

    /// Appends `bytes` and returns the records of the lines they complete. Lines that are not
    /// records are skipped.
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> [StressRecord] {
        pending += bytes
        var records: [StressRecord] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            let text = String(decoding: pending[..<newline], as: UTF8.self)
            pending.removeSubrange(...newline)
            if let record = StressRecord(line: text[...]) { records.append(record) }
        }
        return records
    }
}
