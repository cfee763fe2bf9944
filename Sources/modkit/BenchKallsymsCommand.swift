import Glibc
import ModKit

/// `modkit bench kallsyms`: times name and address lookups in a `KallsymsTable` of synthetic
/// symbols, the structure that every kallsyms owner uses.
struct BenchKallsymsCommand: Command {
    static let name = "bench"
    static let summary = "run a benchmark: kallsyms lookups"
    static let usage = "modkit bench kallsyms [--symbols N] [--lookups N] [--runs N]"
    static let discussion = """
        kallsyms builds one table of N synthetic symbols (100000 by default) with the data
        structure a host uses for each module and library: entries sorted by address, and an
        open-addressing hash on the name bytes. It then times random lookups of a name to its
        address and of an address to the symbol that contains it. For each, it prints the
        median over the runs of the thread's CPU time per lookup in nanoseconds, the target
        (50 ns and 100 ns) and the time of a linear scan of the same table. Build with
        -c release for meaningful figures.
        """
    static let options = [
        OptionDefinition(long: "symbols", short: "n", valueName: "N", help: "symbols in the table (default 100000)"),
        OptionDefinition(long: "lookups", short: "l", valueName: "N", help: "random lookups per run (default 1000000)"),
        OptionDefinition(long: "runs", short: "r", valueName: "N", help: "runs; the median is printed (default 7)"),
    ]

    static let nameTarget = 50.0
    static let addressTarget = 100.0

    let symbolCount: Int
    let lookupCount: Int
    let runCount: Int

    init(arguments: ParsedArguments) throws(UsageError) {
        guard let benchmark = arguments.positionals.first else {
            throw UsageError("missing benchmark name; the only benchmark is 'kallsyms'")
        }
        guard benchmark == "kallsyms" else {
            throw UsageError("unknown benchmark '\(benchmark)'; the only benchmark is 'kallsyms'")
        }
        if let extra = arguments.positionals.dropFirst().first ?? arguments.passthrough.first {
            throw UsageError("unexpected argument '\(extra)'")
        }
        symbolCount = try arguments.integer("symbols", default: 100_000)
        lookupCount = try arguments.integer("lookups", default: 1_000_000)
        runCount = try arguments.integer("runs", default: 7)
    }

    func run() -> Int32 {
        var generator = SplitMix64(seed: 0x6b61_6c6c_7379_6d73)
        let workload = SyntheticSymbols(count: symbolCount, generator: &generator)
        let table = workload.makeTable()
        let names = workload.randomNames(lookupCount, generator: &generator)
        let addresses = workload.randomAddresses(lookupCount, generator: &generator)
        // A linear scan of 100000 symbols takes hundreds of microseconds per lookup, so it
        // gets fewer lookups: 200 for the default table.
        let scanCount = max(1, min(lookupCount, 20_000_000 / symbolCount))
        let scanNames = workload.randomNames(scanCount, generator: &generator)
        let scanAddresses = workload.randomAddresses(scanCount, generator: &generator)

        var checksum: UInt64 = 0
        let nameTime = median(runCount) { Self.lookUpNames(names, in: table, checksum: &checksum) }
        let addressTime = median(runCount) { Self.lookUpAddresses(addresses, in: table, checksum: &checksum) }
        let nameScanTime = median(runCount) { Self.scanNames(scanNames, in: table, checksum: &checksum) }
        let addressScanTime = median(runCount) { Self.scanAddresses(scanAddresses, in: table, checksum: &checksum) }
        guard checksum != 0 else {
            Self.reportError("no lookup found its symbol; the benchmark is broken")
            return ExitStatus.failure
        }

        print("kallsyms lookups in a table of \(table.count) synthetic symbols, median of \(runCount) runs")
        print("                     lookups   ns/lookup   target              linear scan ns/lookup")
        print(row("name to address", lookupCount, nameTime, Self.nameTarget, nameScanTime))
        print(row("address to symbol", lookupCount, addressTime, Self.addressTarget, addressScanTime))
        return ExitStatus.success
    }

    private func row(_ label: String, _ lookups: Int, _ time: Double, _ target: Double, _ scanTime: Double) -> String {
        let verdict = time <= target ? "met" : "missed"
        let targetText = "<= \(Int(target)) ns, \(verdict)"
        return pad(label, 19) + padLeft(String(lookups), 9) + padLeft(format(time), 12) + "   " + pad(targetText, 18)
            + padLeft(format(scanTime), 12)
    }

    /// Runs `body` `runs` times and returns the median of its results.
    private func median(_ runs: Int, _ body: () -> Double) -> Double {
        var results = (0 ..< runs).map { _ in body() }
        results.sort()
        return results[results.count / 2]
    }

    /// Looks up every name and returns the CPU nanoseconds per lookup.
    private static func lookUpNames(_ names: NameList, in table: KallsymsTable, checksum: inout UInt64) -> Double {
        var sum: UInt64 = 0
        let start = Self.threadTime()
        for name in names.names {
            if let index = table.index(named: name) { sum &+= table.address(at: index) }
        }
        let elapsed = Self.threadTime() - start
        checksum &+= sum
        return elapsed / Double(names.names.count)
    }

    private static func lookUpAddresses(_ addresses: [UInt64], in table: KallsymsTable, checksum: inout UInt64) -> Double {
        var sum: UInt64 = 0
        let start = Self.threadTime()
        for address in addresses {
            if let index = table.index(containing: address) { sum &+= UInt64(index) &+ 1 }
        }
        let elapsed = Self.threadTime() - start
        checksum &+= sum
        return elapsed / Double(addresses.count)
    }

    /// Compares each name with every symbol's name in address order until one matches.
    private static func scanNames(_ names: NameList, in table: KallsymsTable, checksum: inout UInt64) -> Double {
        var sum: UInt64 = 0
        let start = Self.threadTime()
        for name in names.names {
            for index in 0 ..< table.count {
                let candidate = UnsafeRawPointer(table.cName(at: index))
                if memcmp(candidate, name.baseAddress!, name.count) == 0, candidate.load(fromByteOffset: name.count, as: UInt8.self) == 0 {
                    sum &+= table.address(at: index)
                    break
                }
            }
        }
        let elapsed = Self.threadTime() - start
        checksum &+= sum
        return elapsed / Double(names.names.count)
    }

    /// Checks each symbol's range in address order until one contains the address.
    private static func scanAddresses(_ addresses: [UInt64], in table: KallsymsTable, checksum: inout UInt64) -> Double {
        var sum: UInt64 = 0
        let start = Self.threadTime()
        for address in addresses {
            for index in 0 ..< table.count {
                let symbolStart = table.address(at: index)
                if symbolStart <= address, address - symbolStart < table.size(at: index) {
                    sum &+= UInt64(index) &+ 1
                    break
                }
            }
        }
        let elapsed = Self.threadTime() - start
        checksum &+= sum
        return elapsed / Double(addresses.count)
    }

    /// The CPU time of the calling thread in nanoseconds. Wall-clock time would count the
    /// time the thread waits for a processor on a busy machine.
    private static func threadTime() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) * 1e9 + Double(time.tv_nsec)
    }

    private func format(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }

    private func padLeft(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }
}

/// A table of synthetic symbols shaped like a large program's: names of 11 to 43 bytes with
/// shared prefixes, sizes of 16 to 1024 bytes, a few gaps, a quarter of them local.
private struct SyntheticSymbols {
    static let base: UInt64 = 0x7f00_0000_0000
    let symbols: [KallsymsSymbol]
    let end: UInt64

    init(count: Int, generator: inout SplitMix64) {
        let prefixes = ["vfs_", "tcp_", "__do_", "ext4_", "mm_", "sched_", "irq_", "crypto_"]
        var symbols: [KallsymsSymbol] = []
        symbols.reserveCapacity(count)
        var address = Self.base
        for index in 0 ..< count {
            let prefix = prefixes[Int(generator.next() % UInt64(prefixes.count))]
            let suffixLength = Int(generator.next() % 24)
            var name = prefix + "symbol_\(index)"
            for _ in 0 ..< suffixLength { name.append(Character(Unicode.Scalar(UInt8(97 + generator.next() % 26)))) }
            let size = 16 + generator.next() % 1009
            let type: UInt8 = generator.next() % 4 == 0 ? UInt8(ascii: "t") : UInt8(ascii: "T")
            symbols.append(KallsymsSymbol(name: name, address: address, size: size, type: type))
            // One symbol in eight is followed by padding that no symbol covers.
            address += size + (generator.next() % 8 == 0 ? 16 : 0)
        }
        self.symbols = symbols
        end = address
    }

    func makeTable() -> KallsymsTable {
        KallsymsTable(ownerName: "synthetic", kind: .module, start: Self.base, end: end, symbols: symbols)
    }

    func randomNames(_ count: Int, generator: inout SplitMix64) -> NameList {
        NameList((0 ..< count).map { _ in symbols[Int(generator.next() % UInt64(symbols.count))].name })
    }

    /// Addresses inside random symbols.
    func randomAddresses(_ count: Int, generator: inout SplitMix64) -> [UInt64] {
        (0 ..< count).map { _ in
            let symbol = symbols[Int(generator.next() % UInt64(symbols.count))]
            return symbol.address + generator.next() % symbol.size
        }
    }
}

/// Names stored back to back in one buffer, so the timed loops build no strings.
private final class NameList {
    private let bytes: UnsafeMutablePointer<UInt8>
    let names: [UnsafeBufferPointer<UInt8>]

    init(_ strings: [String]) {
        let total = strings.reduce(0) { $0 + $1.utf8.count + 1 }
        bytes = .allocate(capacity: max(total, 1))
        var names: [UnsafeBufferPointer<UInt8>] = []
        var offset = 0
        for string in strings {
            let start = bytes + offset
            for (position, byte) in string.utf8.enumerated() { start[position] = byte }
            start[string.utf8.count] = 0
            names.append(UnsafeBufferPointer(start: start, count: string.utf8.count))
            offset += string.utf8.count + 1
        }
        self.names = names
    }

    deinit { bytes.deallocate() }
}

/// The SplitMix64 generator: fast, seedable, and the same sequence on every run.
private struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
