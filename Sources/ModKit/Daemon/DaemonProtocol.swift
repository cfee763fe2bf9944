import Glibc

/// The wire format between `modkit host` and its clients; docs/protocol.md describes it.
///
/// Every message is a frame: a 16-byte header (magic `MKIT`, version, message type, payload
/// length, a reserved zero word, all little-endian) and then a payload of tagged fields.
public enum DaemonProtocol {
    /// The version this build speaks. A peer with another version gets `EPROTONOSUPPORT`.
    public static let version: UInt16 = 1
    public static let magic: [UInt8] = Array("MKIT".utf8)
    public static let headerSize = 16
    /// The largest payload of a request that carries no image, and of a reply a client accepts
    /// by default.
    public static let maxSmallPayload = 1 << 20
    /// Room for the fields of a load request besides the image itself.
    public static let loadRequestOverhead = 64 << 10
}

/// The kind of a frame. Requests are below `0x8000`, replies from `0x8000` on.
public enum MessageType: UInt16, Sendable, CaseIterable {
    case daemonInfo = 1
    /// `init_module`: the image travels in the payload.
    case loadImage = 2
    /// `finit_module`: an open descriptor of the file travels with the header (`SCM_RIGHTS`).
    case loadFile = 3
    case remove = 4
    case list = 5
    case moduleInfo = 6
    case symbols = 7
    case readLog = 8
    case callCommand = 9
    case listCommands = 10
    /// Lists, reads or sets the parameters of a module.
    case parameters = 11

    /// The final reply to a request.
    case reply = 0x8000
    /// A batch of log records, sent before the final reply of `readLog`.
    case logRecords = 0x8001

    public var isRequest: Bool { rawValue < 0x8000 }
}

/// The tags of payload fields. Each tag has one value type, given in docs/protocol.md.
public enum FieldTag: UInt16, Sendable, CaseIterable {
    case status = 1
    case message = 2
    case name = 3
    case image = 4
    case parameters = 5
    case flags = 6
    case module = 7
    case size = 8
    case referenceCount = 9
    case user = 10
    case dependency = 11
    case state = 12
    case infoEntry = 13
    case key = 14
    case value = 15
    case symbol = 16
    case address = 17
    case owner = 18
    case namespace = 19
    case level = 20
    case timestamp = 21
    case text = 22
    case argument = 23
    case output = 24
    case version = 25
    case protocolVersion = 26
    case referenceMode = 27
    case areaStart = 28
    case areaSize = 29
    case taint = 30
    case moduleDirectory = 31
    case configFile = 32
    case processID = 33
    case maxImageSize = 34
    case timeout = 35
    case command = 36
    case record = 37
    case file = 38
    case summary = 39
    case sequence = 40
    case commandStatus = 41
    case parameter = 42
    case parameterType = 43
    case permissions = 44
}

/// Flag bits of the `flags` field.
public enum RequestFlags {
    /// `remove`: wait for the reference count to drop to zero.
    public static let wait: UInt64 = 1 << 0
    /// `remove`: remove even while in use.
    public static let force: UInt64 = 1 << 1
    /// `loadImage`, `loadFile`: load even if imported symbol CRCs disagree, tainting with `F`
    /// (Linux's `MODULE_INIT_IGNORE_MODVERSIONS`).
    public static let ignoreSymbolVersions: UInt64 = 1 << 0
    /// `loadImage`, `loadFile`: load even if the module's vermagic differs, tainting with `F`
    /// (Linux's `MODULE_INIT_IGNORE_VERMAGIC`).
    public static let ignoreVersionMagic: UInt64 = 1 << 1
    /// `readLog`: keep the connection open and send new records as they are logged.
    public static let follow: UInt64 = 1 << 0
    /// A symbol record's flags: the export is restricted to GPL-compatible modules.
    public static let gplOnly: UInt64 = 1 << 0
}

/// A frame that breaks the protocol, with the status code its error reply carries.
public struct ProtocolError: Error, CustomStringConvertible, Sendable {
    public var status: Int32
    public var message: String

    public init(status: Int32 = EPROTO, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { message }
}

/// The fixed header of every frame.
public struct FrameHeader: Sendable, Equatable {
    public var version: UInt16
    public var type: MessageType
    public var payloadLength: Int

    public init(type: MessageType, payloadLength: Int, version: UInt16 = DaemonProtocol.version) {
        self.version = version
        self.type = type
        self.payloadLength = payloadLength
    }

    public func encoded() -> [UInt8] {
        var bytes = DaemonProtocol.magic
        bytes.appendLittleEndian(version)
        bytes.appendLittleEndian(type.rawValue)
        bytes.appendLittleEndian(UInt32(payloadLength))
        bytes.appendLittleEndian(UInt32(0))
        return bytes
    }

    /// Checks the magic, version, type and reserved word of a received header, and its length
    /// against `maxPayload(type)`.
    public static func decode(_ bytes: UnsafeRawBufferPointer, maxPayload: (MessageType) -> Int) throws(ProtocolError) -> FrameHeader {
        precondition(bytes.count == DaemonProtocol.headerSize)
        guard bytes.prefix(4).elementsEqual(DaemonProtocol.magic) else {
            let received = bytes.prefix(4).map { String($0, radix: 16, uppercase: false) }.joined(separator: " ")
            throw ProtocolError("invalid frame: magic is \(received), expected 4d 4b 49 54 ('MKIT')")
        }
        let version = bytes.loadLittleEndian(UInt16.self, at: 4)
        guard version == DaemonProtocol.version else {
            throw ProtocolError(status: EPROTONOSUPPORT,
                                "protocol version \(version) is not supported; this modkit speaks version \(DaemonProtocol.version), so use a matching modkit")
        }
        let rawType = bytes.loadLittleEndian(UInt16.self, at: 6)
        guard let type = MessageType(rawValue: rawType) else {
            throw ProtocolError("invalid frame: unknown message type \(rawType)")
        }
        guard bytes.loadLittleEndian(UInt32.self, at: 12) == 0 else {
            throw ProtocolError("invalid frame: reserved header word is not zero")
        }
        let length = Int(bytes.loadLittleEndian(UInt32.self, at: 8))
        let limit = maxPayload(type)
        guard length <= limit else {
            throw ProtocolError(status: EMSGSIZE, "\(type) payload of \(length) bytes exceeds the limit of \(limit) bytes")
        }
        return FrameHeader(version: version, type: type, payloadLength: length)
    }

    private init(version: UInt16, type: MessageType, payloadLength: Int) {
        self.version = version
        self.type = type
        self.payloadLength = payloadLength
    }
}

extension Array where Element == UInt8 {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

extension UnsafeRawBufferPointer {
    func loadLittleEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
