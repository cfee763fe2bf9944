/// A map from symbol names to small integers, with open addressing on the names' FNV-1a hashes.
///
/// It exists because merging a module's symbols does a few thousand inserts and lookups per
/// load, and `Dictionary` rehashes each key with SipHash; here each name is hashed once, when
/// its `SymbolName` is made.
struct SymbolNameTable: @unchecked Sendable {
    private var keys: [SymbolName?]
    private var values: [Int32]
    private(set) var count = 0

    init(minimumCapacity: Int = 16) {
        var capacity = 16
        while capacity < minimumCapacity * 2 { capacity <<= 1 }
        keys = Array(repeating: nil, count: capacity)
        values = Array(repeating: -1, count: capacity)
    }

    private func slot(of name: SymbolName) -> Int {
        let mask = keys.count - 1
        var index = Int(truncatingIfNeeded: name.hashValue64) & mask
        while let key = keys[index], key != name {
            index = (index + 1) & mask
        }
        return index
    }

    subscript(name: SymbolName) -> Int? {
        get {
            let index = slot(of: name)
            return keys[index] == nil ? nil : Int(values[index])
        }
        set {
            let index = slot(of: name)
            guard let newValue else {
                preconditionFailure("SymbolNameTable does not remove entries")
            }
            if keys[index] == nil {
                keys[index] = name
                count += 1
            }
            values[index] = Int32(newValue)
            if count * 2 > keys.count { grow() }
        }
    }

    private mutating func grow() {
        let old = zip(keys, values).compactMap { key, value in key.map { ($0, value) } }
        keys = Array(repeating: nil, count: keys.count * 2)
        values = Array(repeating: -1, count: keys.count)
        count = 0
        for (key, value) in old { self[key] = Int(value) }
    }
}
