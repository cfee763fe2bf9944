import Glibc

/// The parent side of `modkit stress`: reads the worker's records from the pipe until the
/// worker closes it, and with `verbose` reports the progress to standard error.
struct StressMonitor {
    /// The outcome of the worker's records.
    struct Result {
        /// The counts of the last progress or final record.
        var last = StressCounts()
        /// Whether the warm-up cycles ended and the counted cycles began.
        var warmedUp = false
        var finished: (counts: StressCounts, mapsDelta: Int, residentDeltaKiB: Int)?
    }

    var verbose: Bool
    /// The cycles requested, for the progress lines.
    var cycles: Int

    /// How often progress lines are printed with `verbose`.
    static let reportInterval = Duration.seconds(1)

    func read(_ descriptor: Int32) -> Result {
        var result = Result()
        var reader = StressRecordReader()
        var buffer = [UInt8](repeating: 0, count: 4096)
        var lastReport = ContinuousClock.now
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            let records = buffer.withUnsafeBytes { reader.append(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            for record in records {
                switch record {
                case .progress(let counts):
                    result.last = counts
                    if verbose && result.warmedUp && ContinuousClock.now - lastReport >= Self.reportInterval {
                        lastReport = ContinuousClock.now
                        report("\(counts.cycles) of \(cycles) cycles, \(counts.ran) calls ran, \(counts.failed) calls failed cleanly")
                    }
                case .baseline(let mapsLines, let residentKiB):
                    result.warmedUp = true
                    if verbose { report("after the warm-up: \(mapsLines) lines in /proc/self/maps, resident set size \(residentKiB) KiB") }
                case .finished(let counts, let mapsDelta, let residentDeltaKiB):
                    result.last = counts
                    result.finished = (counts, mapsDelta, residentDeltaKiB)
                }
            }
        }
        return result
    }

    private func report(_ text: String) {
        writeToStandardError("modkit \(StressCommand.name): \(text)\n")
    }
}
