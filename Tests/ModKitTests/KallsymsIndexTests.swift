import ModKit
import Testing

/// Checks the lookup index of `KallsymsTable` against a linear scan of the same symbols.
@Suite("kallsyms lookup index")
struct KallsymsIndexTests {
    /// A small deterministic generator, so that a failure reproduces.
    private struct Generator {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var value = state
            value = (value ^ (value >> 30)) &* 0xbf58_476d_1ce4_e5b9
            value = (value ^ (value >> 27)) &* 0x94d0_49bb_1331_11eb
            return value ^ (value >> 31)
        }

        mutating func below(_ bound: UInt64) -> UInt64 { next() % bound }
    }

    private static let start: UInt64 = 0x7f00_0000_0000
    private static let end: UInt64 = start + 0x40_0000

    /// Random symbols with clusters, gaps, shared addresses, missing sizes and repeated names.
    private static func symbols(count: Int, generator: inout Generator) -> [KallsymsSymbol] {
        var symbols: [KallsymsSymbol] = []
        var address = start
        for number in 0 ..< count {
            address += generator.below(4) == 0 ? generator.below(0x4000) : generator.below(64)
            guard address < end else { break }
            let name = generator.below(10) == 0 ? "shared_\(generator.below(20))" : "symbol_\(number)_\(generator.below(1000))"
            let type: UInt8 = generator.below(2) == 0 ? UInt8(ascii: "T") : UInt8(ascii: "t")
            let size = generator.below(3) == 0 ? 0 : generator.below(96)
            symbols.append(KallsymsSymbol(name: name, address: address, size: size, type: type))
        }
        return symbols
    }

    /// The index `table` must return for `address`: the last entry at or below it, if its
    /// range contains the address.
    private static func scan(_ table: KallsymsTable, containing address: UInt64) -> Int? {
        guard table.start <= address, address < table.end else { return nil }
        var found: Int?
        for index in 0 ..< table.count where table.address(at: index) <= address { found = index }
        guard let found, address - table.address(at: found) < table.size(at: found) else { return nil }
        return found
    }

    /// The index a name lookup must return: the first global of that name, else the first local.
    private static func scan(_ table: KallsymsTable, named name: String) -> Int? {
        let matches = (0 ..< table.count).filter { table.name(at: $0) == name }
        return matches.first { table.type(at: $0) == UInt8(ascii: "T") } ?? matches.first
    }

    @Test("address lookups match a scan", arguments: [1, 2, 17, 1000, 5000])
    func addressesMatchScan(count: Int) {
        var generator = Generator(state: UInt64(count))
        let table = KallsymsTable(ownerName: "random", kind: .module, start: Self.start, end: Self.end,
                                  symbols: Self.symbols(count: count, generator: &generator))
        var probes: [UInt64] = [Self.start - 1, Self.start, Self.end - 1, Self.end, 0, .max]
        for index in 0 ..< table.count {
            let address = table.address(at: index)
            probes += [address - 1, address, address + 1, address + table.size(at: index)]
        }
        for _ in 0 ..< 2000 { probes.append(Self.start + generator.below(Self.end - Self.start)) }

        let mismatches = probes.filter { table.index(containing: $0) != Self.scan(table, containing: $0) }
        #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(5).map { String($0, radix: 16) })")
    }

    @Test("name lookups match a scan", arguments: [1, 17, 1000, 5000])
    func namesMatchScan(count: Int) {
        var generator = Generator(state: UInt64(count) &* 31)
        let table = KallsymsTable(ownerName: "random", kind: .module, start: Self.start, end: Self.end,
                                  symbols: Self.symbols(count: count, generator: &generator))
        var names = Set((0 ..< table.count).map { table.name(at: $0) })
        names.formUnion(["", "symbol", "shared_", "shared_99", "symbol_0_", String(repeating: "x", count: 300)])

        let mismatches = names.filter { table.index(named: $0) != Self.scan(table, named: $0) }
        #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(5))")
    }

    @Test("names one byte apart stay apart")
    func namesOneByteApart() {
        // Each name is a prefix of the next ("a", "ab", "abc"), so a lookup must compare lengths.
        // The lengths cover every way the hash and the comparison read the last bytes.
        let symbols = (1 ... 40).map { length in
            KallsymsSymbol(name: String((0 ..< length).map { Character(Unicode.Scalar(UInt8(97 + $0 % 26))) }),
                           address: Self.start + UInt64(length) * 16, size: 16, type: UInt8(ascii: "T"))
        }
        let table = KallsymsTable(ownerName: "prefixes", kind: .module, start: Self.start, end: Self.end, symbols: symbols)

        for index in 0 ..< table.count {
            let name = Array(table.name(at: index).utf8)
            #expect(table.index(named: table.name(at: index)) == index)
            for position in name.indices {
                var changed = name
                changed[position] ^= 0x20
                let changedName = String(decoding: changed, as: UTF8.self)
                #expect(table.index(named: changedName) == nil, "found \(changedName)")
            }
        }
    }

    @Test("empty table finds nothing")
    func emptyTable() {
        let table = KallsymsTable(ownerName: "empty", kind: .module, start: Self.start, end: Self.end, symbols: [])

        #expect(table.index(containing: Self.start) == nil)
        #expect(table.index(named: "anything") == nil)
    }
}
