import Glibc

/// The daemon's log: module messages (`printk`, `pr_*`) and the daemon's own events, kept in
/// a ring buffer of the newest records for `modkit dmesg`, and echoed to standard error.
public final class DaemonLog: @unchecked Sendable {
    /// The names `dmesg -l` accepts, indexed by level.
    public static let levelNames = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"]

    /// The number of records kept; older ones are dropped.
    public let capacity: Int
    /// Records up to this level are echoed to standard error (6: info and more severe).
    public let consoleLevel: Int
    private let started: ContinuousClock.Instant

    private let lock = ConditionLock()
    /// Guarded by `lock`: the ring, oldest first from `head`.
    private var ring: [LogEntry] = []
    private var head = 0
    private var nextSequence: UInt64 = 1
    private var closed = false

    public init(capacity: Int = 4096, consoleLevel: Int = 6, started: ContinuousClock.Instant = .now) {
        self.capacity = max(capacity, 1)
        self.consoleLevel = consoleLevel
        self.started = started
    }

    /// Adds a record per line of `text`. A `KERN_CONT` continuation (level -2) takes the level
    /// of the record it continues but is kept as a record of its own.
    public func log(_ level: Int, module: String?, _ text: String, timestamp: Duration? = nil) {
        var body = Substring(text)
        while body.last == "\n" { body = body.dropLast() }
        let time = timestamp ?? (ContinuousClock.now - started)
        for line in body.split(separator: "\n", omittingEmptySubsequences: false) {
            append(level, module: module, line, timestamp: time)
        }
    }

    private func append(_ level: Int, module: String?, _ body: Substring, timestamp: Duration) {
        let entry: LogEntry = lock.withLock {
            var effectiveLevel = level
            if !(0 ... 7).contains(level) {
                let previous = ring.isEmpty ? nil : ring[(head + ring.count - 1) % ring.count]
                effectiveLevel = level == -2 && previous?.module == module ? previous!.level : 4
            }
            let entry = LogEntry(sequence: nextSequence, level: effectiveLevel, timestamp: timestamp, module: module, text: String(body))
            nextSequence += 1
            if ring.count < capacity {
                ring.append(entry)
            } else {
                ring[head] = entry
                head = (head + 1) % capacity
            }
            lock.broadcast()
            return entry
        }
        if entry.level <= consoleLevel {
            StandardError.write(Self.format(entry) + "\n")
        }
    }

    /// Receives the host's records.
    public func record(_ record: LogRecord) {
        log(record.level, module: record.module, record.text, timestamp: record.timestamp)
    }

    /// Returns the records after `sequence`, oldest first.
    public func records(after sequence: UInt64 = 0) -> [LogEntry] {
        lock.withLock { unlockedRecords(after: sequence) }
    }

    private func unlockedRecords(after sequence: UInt64) -> [LogEntry] {
        var result: [LogEntry] = []
        for offset in 0 ..< ring.count {
            let entry = ring[(head + offset) % ring.count]
            if entry.sequence > sequence { result.append(entry) }
        }
        return result
    }

    /// Waits up to `timeout` for records after `sequence`. Returns nil once the log is closed.
    public func waitForRecords(after sequence: UInt64, timeout: Duration) -> [LogEntry]? {
        lock.withLock {
            if !closed && nextSequence <= sequence + 1 { lock.wait(timeout: timeout) }
            if closed { return nil }
            return unlockedRecords(after: sequence)
        }
    }

    /// Wakes every follower and makes them stop, for shutdown.
    public func close() {
        lock.withLock {
            closed = true
            lock.broadcast()
        }
    }

    /// Formats one line as `dmesg` prints it, with the level name: `[    1.234567] info: hello: text`.
    public static func format(_ entry: LogEntry, withLevel: Bool = true) -> String {
        var line = formatTimestamp(entry.timestamp) + " "
        if withLevel { line += levelNames[min(max(entry.level, 0), 7)] + ": " }
        line += (entry.module ?? "modkit") + ": " + entry.text
        return line
    }

    /// `[SSSSS.UUUUUU]`: seconds padded to 5, microseconds to 6, as the kernel prints them.
    public static func formatTimestamp(_ timestamp: Duration) -> String {
        let microseconds = max(timestamp.nanoseconds, 0) / 1000
        let seconds = String(microseconds / 1_000_000)
        let fraction = String(microseconds % 1_000_000)
        return "[" + String(repeating: " ", count: max(0, 5 - seconds.count)) + seconds + "."
            + String(repeating: "0", count: 6 - fraction.count) + fraction + "]"
    }
}
