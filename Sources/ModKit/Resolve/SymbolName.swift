import Glibc

/// A symbol name as the bytes of an object's string table, hashed once.
///
/// Linking compares and hashes thousands of names per load; doing it on the raw bytes, without
/// building a `String` for each, is what keeps symbol merging cheap. A `SymbolName` points into
/// its object's image and is valid only while that image is alive.
struct SymbolName: Hashable, @unchecked Sendable {
    let start: UnsafePointer<UInt8>
    let count: Int
    let hashValue64: UInt64

    /// The NUL-terminated name at `start`.
    init(cString start: UnsafePointer<UInt8>) {
        self.init(start: start, count: strlen(UnsafeRawPointer(start).assumingMemoryBound(to: CChar.self)))
    }

    init(start: UnsafePointer<UInt8>, count: Int) {
        self.start = start
        self.count = count
        // FNV-1a, 64-bit.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0 ..< count {
            hash = (hash ^ UInt64(start[i])) &* 0x0000_0100_0000_01b3
        }
        hashValue64 = hash
    }

    static func == (lhs: SymbolName, rhs: SymbolName) -> Bool {
        lhs.hashValue64 == rhs.hashValue64 && lhs.count == rhs.count && memcmp(lhs.start, rhs.start, lhs.count) == 0
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(hashValue64)
    }

    var string: String {
        String(decoding: UnsafeBufferPointer(start: start, count: count), as: UTF8.self)
    }

    /// Runs `body` with the name of `string`, valid only inside `body`.
    static func with<R>(_ string: String, _ body: (SymbolName) -> R) -> R {
        var string = string
        return string.withUTF8 { bytes in
            body(SymbolName(start: bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!, count: bytes.count))
        }
    }
}

extension ObjectFile {
    /// The raw name of symbol `index`.
    func rawSymbolName(_ index: Int) -> SymbolName {
        SymbolName(cString: (image.base + symbolNames.offset + symbols[index].nameOffset).assumingMemoryBound(to: UInt8.self))
    }
}
