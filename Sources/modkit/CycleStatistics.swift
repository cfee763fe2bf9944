import ModKit

/// The stage times of every `modkit exec` cycle, reported as medians.
struct CycleStatistics {
    private var stageSamples: [LoadStatistics.Stage: [Duration]] = [:]
    private var cycleSamples: [Duration] = []
    private var reuseCounts: [LoadStatistics.Reuse: Int] = [:]

    mutating func append(_ stages: LoadStatistics, total: Duration) {
        for stage in LoadStatistics.Stage.allCases {
            stageSamples[stage, default: []].append(stages[stage])
        }
        cycleSamples.append(total)
        reuseCounts[stages.reuse, default: 0] += 1
    }

    /// Formats one line per stage with its median in microseconds, a line that counts what the
    /// loads took from the load cache, then `NNN.N us per cycle` with the
    /// median of the whole cycle. The cycle is timed from the start of the load to the end of
    /// the removal, so it also includes the steps between stages.
    func report() -> String {
        let names = LoadStatistics.Stage.allCases.map(\.rawValue)
        let nameWidth = names.map(\.count).max() ?? 0
        let values = LoadStatistics.Stage.allCases.map { Self.formatMicroseconds(Self.median(stageSamples[$0] ?? [])) }
        let valueWidth = values.map(\.count).max() ?? 0

        let cycles = cycleSamples.count
        var text = "stage times, median of \(cycles) \(cycles == 1 ? "cycle" : "cycles"):\n"
        for (name, value) in zip(names, values) {
            let namePadding = String(repeating: " ", count: nameWidth - name.count)
            let valuePadding = String(repeating: " ", count: valueWidth - value.count)
            text += "  \(name)\(namePadding)  \(valuePadding)\(value) us\n"
        }
        text += "load cache: linked image reused in \(reuseCounts[.linkedImage] ?? 0) loads, objects alone in \(reuseCounts[.objects] ?? 0), nothing in \(reuseCounts[.none] ?? 0)\n"
        text += "\(Self.formatMicroseconds(Self.median(cycleSamples))) us per cycle\n"
        return text
    }

    /// Returns the median in nanoseconds, which is the mean of the two middle samples when the
    /// count is even.
    static func median(_ samples: [Duration]) -> Double {
        guard !samples.isEmpty else { return 0 }
        let sorted = samples.map(nanoseconds).sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    static func nanoseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9
    }

    /// Nanoseconds as microseconds with one decimal: `1234.5`.
    static func formatMicroseconds(_ nanoseconds: Double) -> String {
        let tenths = Int((nanoseconds / 100).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
