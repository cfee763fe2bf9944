/// Time spent in each stage of a module's life, for `modkit exec --stats`.
public struct LoadStatistics: Sendable {
    public enum Stage: String, CaseIterable, Sendable {
        case validate, layout = "lay out", resolve, relocate, protect, initialize = "init", main, exit, unmap
    }

    /// The parts of a load taken from the load cache instead of computed.
    public enum Reuse: String, Sendable {
        /// Nothing: the files were read and every stage ran.
        case none
        /// The validated objects and their layout.
        case objects
        /// The objects, their layout and the relocated image.
        case linkedImage = "linked image"
    }

    public private(set) var durations: [Stage: Duration] = [:]
    public internal(set) var reuse = Reuse.none

    public init() {}

    public subscript(stage: Stage) -> Duration {
        get { durations[stage] ?? .zero }
        set { durations[stage] = newValue }
    }

    public var total: Duration {
        durations.values.reduce(.zero, +)
    }

    /// Runs `body` and adds its time to `stage`.
    mutating func measure<T, E: Error>(_ stage: Stage, _ body: () throws(E) -> T) throws(E) -> T {
        let start = ContinuousClock.now
        defer { durations[stage, default: .zero] += ContinuousClock.now - start }
        return try body()
    }
}
