/// Builds a payload: a sequence of fields, each a 2-byte tag, a 4-byte length and the value.
///
/// Integers are 8 bytes little-endian, strings UTF-8 without a terminator, and a record is a
/// nested field sequence.
public struct FieldWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func append(_ tag: FieldTag, bytes value: UnsafeRawBufferPointer) {
        bytes.appendLittleEndian(tag.rawValue)
        bytes.appendLittleEndian(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func append(_ tag: FieldTag, bytes value: some Collection<UInt8>) {
        bytes.appendLittleEndian(tag.rawValue)
        bytes.appendLittleEndian(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func append(_ tag: FieldTag, _ value: String) {
        append(tag, bytes: Array(value.utf8))
    }

    public mutating func append(_ tag: FieldTag, _ value: UInt64) {
        var encoded: [UInt8] = []
        encoded.appendLittleEndian(value)
        append(tag, bytes: encoded)
    }

    public mutating func append(_ tag: FieldTag, _ value: Int64) {
        append(tag, UInt64(bitPattern: value))
    }

    public mutating func append(_ tag: FieldTag, record: FieldWriter) {
        append(tag, bytes: record.bytes)
    }

    /// Appends fields that another writer encoded.
    mutating func appendRaw(_ encoded: [UInt8]) {
        bytes.append(contentsOf: encoded)
    }
}

/// A decoded payload. Accessors check each field's type and count, so a request that passes
/// them is well formed.
public struct Fields: Sendable {
    public struct Field: Sendable {
        public var tag: FieldTag
        public var value: ArraySlice<UInt8>
    }

    public private(set) var fields: [Field] = []

    /// Splits `bytes` into fields; every tag must be known and every length must fit.
    public init(decoding bytes: ArraySlice<UInt8>) throws(ProtocolError) {
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            guard bytes.endIndex - offset >= 6 else {
                throw ProtocolError("truncated field header at payload offset \(offset - bytes.startIndex)")
            }
            let rawTag = UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
            var length = 0
            for index in 0 ..< 4 { length |= Int(bytes[offset + 2 + index]) << (8 * index) }
            guard let tag = FieldTag(rawValue: rawTag) else {
                throw ProtocolError("unknown field tag \(rawTag) at payload offset \(offset - bytes.startIndex)")
            }
            let start = offset + 6
            guard length <= bytes.endIndex - start else {
                throw ProtocolError("field \(tag) at payload offset \(offset - bytes.startIndex) has length \(length), but only \(bytes.endIndex - start) bytes follow")
            }
            fields.append(Field(tag: tag, value: bytes[start ..< start + length]))
            offset = start + length
        }
    }

    /// Rejects fields that a message of this kind does not carry.
    public func checkTags(allowed: Set<FieldTag>, in message: String) throws(ProtocolError) {
        if let stray = fields.first(where: { !allowed.contains($0.tag) }) {
            throw ProtocolError("\(message) does not take field \(stray.tag)")
        }
    }

    private func single(_ tag: FieldTag) throws(ProtocolError) -> ArraySlice<UInt8>? {
        var found: ArraySlice<UInt8>?
        for field in fields where field.tag == tag {
            guard found == nil else { throw ProtocolError("field \(tag) appears more than once") }
            found = field.value
        }
        return found
    }

    public func bytes(_ tag: FieldTag) throws(ProtocolError) -> ArraySlice<UInt8>? {
        try single(tag)
    }

    public func string(_ tag: FieldTag) throws(ProtocolError) -> String? {
        guard let value = try single(tag) else { return nil }
        return try Self.decodeString(value, tag: tag)
    }

    /// A string field that must be present.
    public func requiredString(_ tag: FieldTag, in message: String) throws(ProtocolError) -> String {
        guard let value = try string(tag) else { throw ProtocolError("\(message) is missing field \(tag)") }
        return value
    }

    public func strings(_ tag: FieldTag) throws(ProtocolError) -> [String] {
        var values: [String] = []
        for field in fields where field.tag == tag { values.append(try Self.decodeString(field.value, tag: tag)) }
        return values
    }

    public func uint64(_ tag: FieldTag) throws(ProtocolError) -> UInt64? {
        guard let value = try single(tag) else { return nil }
        guard value.count == 8 else { throw ProtocolError("field \(tag) has \(value.count) bytes; an integer has 8") }
        var result: UInt64 = 0
        for (index, byte) in value.enumerated() { result |= UInt64(byte) << (8 * UInt64(index)) }
        return result
    }

    public func int64(_ tag: FieldTag) throws(ProtocolError) -> Int64? {
        try uint64(tag).map { Int64(bitPattern: $0) }
    }

    public func records(_ tag: FieldTag) throws(ProtocolError) -> [Fields] {
        var values: [Fields] = []
        for field in fields where field.tag == tag { values.append(try Fields(decoding: field.value)) }
        return values
    }

    private static func decodeString(_ value: ArraySlice<UInt8>, tag: FieldTag) throws(ProtocolError) -> String {
        guard let text = String(validating: value, as: UTF8.self) else {
            throw ProtocolError("field \(tag) is not valid UTF-8")
        }
        return text
    }
}
