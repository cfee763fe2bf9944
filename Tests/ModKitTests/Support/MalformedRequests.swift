import Glibc
import ModKit

/// A file descriptor that a malformed request passes with `SCM_RIGHTS`. The runner opens it
/// just before sending and closes it right after, so the daemon has the only copy.
enum PassedDescriptor: CaseIterable {
    case directory
    case nullDevice
    case pipe
    /// The client's own end of the connection.
    case connectionSocket
    /// `hello.o` opened with `O_PATH`: a regular file that cannot be read.
    case pathOnlyObject
    /// A non-empty file opened for writing only.
    case writeOnlyFile
    case emptyFile
    case garbageFile
    /// The first half of `hello.o`.
    case truncatedObjectFile
}

/// How a reply's message is checked.
enum MessageCheck {
    case exact(String)
    case prefix(String)

    func matches(_ message: String) -> Bool {
        switch self {
        case .exact(let expected): message == expected
        case .prefix(let expected): message.hasPrefix(expected)
        }
    }
}

/// One request of the robustness run: the bytes the client sends, how it ends the exchange,
/// and the replies it expects.
struct MalformedRequest {
    enum Ending {
        /// Reads the replies; the connection stays open unless `closesConnection`.
        case readReplies
        /// Shuts down sending, so the daemon reads end of file in the middle of the frame, then
        /// reads the replies.
        case shutdownThenReadReplies
        /// Closes the socket at once without reading anything.
        case closeAtOnce
    }

    var label: String
    /// Sent one after the other; the descriptors travel with the first byte of their chunk.
    var chunks: [(bytes: [UInt8], descriptors: [PassedDescriptor])]
    var ending: Ending
    /// Replies in order, each a status and a check of its message.
    var replies: [(status: Int32, message: MessageCheck)]
    /// Whether the daemon closes the connection after the last reply.
    var closesConnection: Bool
    /// Whether the request is well formed, so it may share a connection with others.
    var keepsConnection: Bool { !closesConnection && ending == .readReplies }
}

/// Draws malformed requests from a seeded generator; request `index` is of kind
/// `index % kinds.count`, so every kind appears about equally often.
struct MalformedRequestGenerator {
    enum Kind: CaseIterable {
        case randomBytes, garbagePayload, structuredGarbage, wrongVersion, unknownType, replyType, reservedWord
        case hugeLength, truncatedFrame, closedMidFrame, lyingImageLength, shortFrameLength, truncatedImage
        case corruptedImageHeader, wrongDescriptor, twoDescriptors, misplacedDescriptor, failingRequest, pipelined
    }

    var random: SeededGenerator
    /// The bytes of `hello.o`.
    let image: [UInt8]
    /// The daemon's `--max-image-size`.
    let maxImageSize: Int

    mutating func request(_ index: Int) -> MalformedRequest {
        let kind = Kind.allCases[index % Kind.allCases.count]
        let label = "request \(index) (\(kind))"
        switch kind {
        case .randomBytes: return randomBytes(label)
        case .garbagePayload: return rejectedPayload(label) { generator, _ in generator.random.bytes(countIn: 1 ... 300) }
        case .structuredGarbage: return rejectedPayload(label) { generator, type in generator.garbageFields(for: type) }
        case .wrongVersion: return wrongVersion(label)
        case .unknownType: return unknownType(label)
        case .replyType: return replyType(label)
        case .reservedWord: return reservedWord(label)
        case .hugeLength: return hugeLength(label)
        case .truncatedFrame: return truncatedFrame(label)
        case .closedMidFrame: return closedMidFrame(label)
        case .lyingImageLength: return lyingImageLength(label)
        case .shortFrameLength: return shortFrameLength(label)
        case .truncatedImage: return truncatedImage(label)
        case .corruptedImageHeader: return corruptedImageHeader(label)
        case .wrongDescriptor: return wrongDescriptor(label)
        case .twoDescriptors: return twoDescriptors(label)
        case .misplacedDescriptor: return misplacedDescriptor(label)
        case .failingRequest: return failingRequest(label)
        case .pipelined: return pipelined(label)
        }
    }

    // MARK: Frames the daemon rejects and then closes

    private mutating func randomBytes(_ label: String) -> MalformedRequest {
        var bytes = random.bytes(countIn: 16 ... 400)
        // A first byte other than 'M' keeps the magic wrong.
        if bytes[0] == 0x4D { bytes[0] = 0 }
        return closing(label, bytes, status: EPROTO, .prefix("invalid frame: magic is "))
    }

    /// A valid header of a random request type with a payload that `Request` rejects; the
    /// daemon must reply with the same error.
    private mutating func rejectedPayload(_ label: String,
                                          _ makePayload: (inout MalformedRequestGenerator, MessageType) -> [UInt8]) -> MalformedRequest {
        while true {
            let type = requestType()
            let payload = makePayload(&self, type)
            do throws(ProtocolError) {
                _ = try Request(type: type, payload: payload[...])
            } catch {
                let bytes = frameHeader(type: type.rawValue, length: UInt32(payload.count)) + payload
                return closing(label, bytes, status: error.status, .exact(error.message))
            }
        }
    }

    /// Fields with known tags but wrong values: lengths past the end, integers of the wrong
    /// size, invalid UTF-8, duplicates, and fields the request does not take.
    private mutating func garbageFields(for type: MessageType) -> [UInt8] {
        var payload: [UInt8] = []
        for _ in 0 ..< Int.random(in: 1 ... 4, using: &random) {
            let tag = FieldTag.allCases.randomElement(using: &random)!
            var value: [UInt8]
            switch Int.random(in: 0 ..< 4, using: &random) {
            case 0: value = random.bytes(countIn: 0 ... 7)
            case 1: value = [0xC3, 0x28, 0xFF] + random.bytes(countIn: 0 ... 8)
            case 2: value = Array("module\(Int.random(in: 0 ... 99, using: &random))".utf8)
            default: value = random.bytes(8)
            }
            var length = UInt32(value.count)
            if Int.random(in: 0 ..< 5, using: &random) == 0 { length += UInt32.random(in: 1 ... 1000, using: &random) }
            payload += littleEndianBytes(tag.rawValue) + littleEndianBytes(length) + value
        }
        if Int.random(in: 0 ..< 4, using: &random) == 0 { payload += random.bytes(countIn: 1 ... 5) }
        return payload
    }

    private mutating func wrongVersion(_ label: String) -> MalformedRequest {
        var version = UInt16.random(in: 0 ... .max, using: &random)
        if version == DaemonProtocol.version { version = 0 }
        let bytes = frameHeader(type: requestType().rawValue, version: version, length: 0)
        return closing(label, bytes, status: EPROTONOSUPPORT,
                       .exact("protocol version \(version) is not supported; this modkit speaks version 1, so use a matching modkit"))
    }

    private mutating func unknownType(_ label: String) -> MalformedRequest {
        var type = UInt16.random(in: 0 ... .max, using: &random)
        while MessageType(rawValue: type) != nil { type = UInt16.random(in: 0 ... .max, using: &random) }
        let payload = random.bytes(countIn: 0 ... 64)
        let bytes = frameHeader(type: type, length: UInt32(payload.count)) + payload
        return closing(label, bytes, status: EPROTO, .exact("invalid frame: unknown message type \(type)"))
    }

    private mutating func replyType(_ label: String) -> MalformedRequest {
        let type = [MessageType.reply, .logRecords].randomElement(using: &random)!
        let bytes = frameHeader(type: type.rawValue, length: 0)
        return closing(label, bytes, status: EPROTO, .exact("message type \(type) is a reply, not a request"))
    }

    private mutating func reservedWord(_ label: String) -> MalformedRequest {
        let bytes = frameHeader(type: requestType().rawValue, length: 0, reserved: UInt32.random(in: 1 ... .max, using: &random))
        return closing(label, bytes, status: EPROTO, .exact("invalid frame: reserved header word is not zero"))
    }

    private mutating func hugeLength(_ label: String) -> MalformedRequest {
        let type = requestType()
        let limit = type == .loadImage ? maxImageSize + DaemonProtocol.loadRequestOverhead : DaemonProtocol.maxSmallPayload
        let length = UInt32.random(in: UInt32(limit + 1) ... .max, using: &random)
        let bytes = frameHeader(type: type.rawValue, length: length) + random.bytes(countIn: 0 ... 64)
        return closing(label, bytes, status: EMSGSIZE, .exact("\(type) payload of \(length) bytes exceeds the limit of \(limit) bytes"))
    }

    /// Builds a load request whose image field claims more bytes than the payload contains.
    private mutating func lyingImageLength(_ label: String) -> MalformedRequest {
        let name = "lie\(Int.random(in: 0 ... 999, using: &random)).o"
        var header = FieldWriter()
        header.append(.name, name)
        header.append(.parameters, "")
        let claimed = UInt32(image.count) + UInt32.random(in: 1 ... 1 << 20, using: &random)
        let payload = header.bytes + littleEndianBytes(FieldTag.image.rawValue) + littleEndianBytes(claimed) + image
        let offset = header.bytes.count
        let message = "field image at payload offset \(offset) has length \(claimed), but only \(payload.count - offset - 6) bytes follow"
        let bytes = frameHeader(type: MessageType.loadImage.rawValue, length: UInt32(payload.count)) + payload
        return closing(label, bytes, status: EPROTO, .exact(message))
    }

    /// Builds a whole load request behind a header whose length is too short. The daemon
    /// decodes the cut payload, rejects it, and drops the bytes that follow.
    private mutating func shortFrameLength(_ label: String) -> MalformedRequest {
        let payload = Request.loadImage(name: "short.o", image: image[...], parameters: "").encodedPayload().bytes
        let length = Int.random(in: 0 ..< payload.count, using: &random)
        let bytes = frameHeader(type: MessageType.loadImage.rawValue, length: UInt32(length)) + payload
        do throws(ProtocolError) {
            _ = try Request(type: .loadImage, payload: payload.prefix(length))
            preconditionFailure("a load request cut to \(length) bytes decoded")
        } catch {
            return closing(label, bytes, status: error.status, .exact(error.message))
        }
    }

    private mutating func misplacedDescriptor(_ label: String) -> MalformedRequest {
        let descriptor = PassedDescriptor.allCases.randomElement(using: &random)!
        if Bool.random(using: &random) {
            let type = requestType(excluding: .loadFile)
            return MalformedRequest(label: label, chunks: [(frameHeader(type: type.rawValue, length: 0), [descriptor])], ending: .readReplies,
                                    replies: [(EPROTO, .exact("a \(type) request cannot carry a file descriptor"))], closesConnection: true)
        }
        // The descriptor arrives with the payload instead of the header.
        let payload = Request.moduleInfo(name: "stray").encodedPayload().bytes
        let header = frameHeader(type: MessageType.moduleInfo.rawValue, length: UInt32(payload.count))
        return MalformedRequest(label: label, chunks: [(header, []), (payload, [descriptor])], ending: .readReplies,
                                replies: [(EPROTO, .exact("a moduleInfo request cannot carry a file descriptor"))], closesConnection: true)
    }

    // MARK: Connections that end in the middle of a frame

    private mutating func truncatedFrame(_ label: String) -> MalformedRequest {
        let length = Int.random(in: 1 ... 4096, using: &random)
        let payload = random.bytes(countIn: 0 ... length - 1)
        let bytes = frameHeader(type: requestType().rawValue, length: UInt32(length)) + payload
        return MalformedRequest(label: label, chunks: [(bytes, [])], ending: .shutdownThenReadReplies,
                                replies: [(ECONNRESET, .exact("receive: Connection reset by peer"))], closesConnection: true)
    }

    private mutating func closedMidFrame(_ label: String) -> MalformedRequest {
        let whole = Request.loadImage(name: "cut.o", image: image[...], parameters: "").encodedPayload().bytes
        let bytes = frameHeader(type: MessageType.loadImage.rawValue, length: UInt32(whole.count)) + whole
        let cut = Int.random(in: 1 ..< bytes.count, using: &random)
        return MalformedRequest(label: label, chunks: [(Array(bytes.prefix(cut)), [])], ending: .closeAtOnce, replies: [],
                                closesConnection: true)
    }

    // MARK: Well-formed requests that fail and keep the connection open

    private mutating func truncatedImage(_ label: String) -> MalformedRequest {
        let name = "truncated\(Int.random(in: 0 ... 999, using: &random)).o"
        let cut = image.prefix(Int.random(in: 0 ..< image.count, using: &random))
        return failing(label, .loadImage(name: name, image: cut, parameters: ""), status: ENOEXEC, .prefix("\(name): "))
    }

    /// `hello.o` with one ELF header field made invalid: the magic, class, data encoding, file
    /// type, machine, or section header entry size.
    private mutating func corruptedImageHeader(_ label: String) -> MalformedRequest {
        var corrupted = image
        let fields: [(offset: Int, size: Int)] = [(0, 1), (4, 1), (5, 1), (16, 2), (18, 2), (58, 2)]
        let field = fields.randomElement(using: &random)!
        for index in field.offset ..< field.offset + field.size { corrupted[index] ^= UInt8.random(in: 1 ... 255, using: &random) }
        let name = "corrupt\(field.offset).o"
        return failing(label, .loadImage(name: name, image: corrupted[...], parameters: ""), status: ENOEXEC, .prefix("\(name): "))
    }

    private mutating func wrongDescriptor(_ label: String) -> MalformedRequest {
        let descriptor = PassedDescriptor.allCases.randomElement(using: &random)!
        let name = "passed-\(descriptor).o"
        let (status, message) = Self.loadFileFailure(descriptor, name: name)
        let payload = Request.loadFile(name: name, parameters: "").encodedPayload().bytes
        return MalformedRequest(label: label, chunks: [(frameHeader(type: MessageType.loadFile.rawValue, length: UInt32(payload.count)) + payload,
                                                        [descriptor])],
                                ending: .readReplies, replies: [(status, message)], closesConnection: false)
    }

    /// A load with two descriptors in one message: the daemon reads the first and must close
    /// the second.
    private mutating func twoDescriptors(_ label: String) -> MalformedRequest {
        let first = [PassedDescriptor.garbageFile, .emptyFile, .truncatedObjectFile, .directory].randomElement(using: &random)!
        let second = PassedDescriptor.allCases.randomElement(using: &random)!
        let name = "two-\(first).o"
        let (status, message) = Self.loadFileFailure(first, name: name)
        let payload = Request.loadFile(name: name, parameters: "").encodedPayload().bytes
        return MalformedRequest(label: label, chunks: [(frameHeader(type: MessageType.loadFile.rawValue, length: UInt32(payload.count)) + payload,
                                                        [first, second])],
                                ending: .readReplies, replies: [(status, message)], closesConnection: false)
    }

    /// Returns the reply to a `loadFile` request that passes `descriptor`.
    private static func loadFileFailure(_ descriptor: PassedDescriptor, name: String) -> (Int32, MessageCheck) {
        switch descriptor {
        case .directory, .nullDevice, .pipe, .connectionSocket:
            (EINVAL, .exact("\(name): the passed descriptor is not a regular file"))
        case .pathOnlyObject, .writeOnlyFile:
            (EBADF, .exact("\(name): cannot read the passed descriptor: Bad file descriptor"))
        case .emptyFile, .garbageFile, .truncatedObjectFile:
            (ENOEXEC, .prefix("\(name): "))
        }
    }

    private mutating func failingRequest(_ label: String) -> MalformedRequest {
        let name = randomName()
        switch Int.random(in: 0 ..< 6, using: &random) {
        case 0:
            return failing(label, .remove(name: name, wait: Bool.random(using: &random), force: false, timeout: .milliseconds(10)),
                           status: ENOENT, .exact("module \(name) is not loaded"))
        case 1:
            return failing(label, .moduleInfo(name: name), status: ENOENT, .exact("module \(name) is not loaded"))
        case 2:
            return failing(label, .symbols(module: name), status: ENOENT, .exact("module \(name) is not loaded"))
        case 3:
            return failing(label, .parameters(module: name, name: "whom", value: nil), status: ENOENT, .exact("module \(name) is not loaded"))
        case 4:
            return failing(label, .callCommand(name: name, arguments: [randomName()]), status: ENOENT, .exact("command \(name) not found"))
        default:
            return failing(label, .loadFile(name: name, parameters: ""), status: EBADF,
                           .exact("a loadFile request must carry the file's descriptor (SCM_RIGHTS)"))
        }
    }

    /// Builds a failing well-formed request and a frame with a bad magic in one send. Both get
    /// a reply, and then the daemon closes the connection.
    private mutating func pipelined(_ label: String) -> MalformedRequest {
        let name = randomName()
        let payload = Request.moduleInfo(name: name).encodedPayload().bytes
        let bytes = frameHeader(type: MessageType.moduleInfo.rawValue, length: UInt32(payload.count)) + payload + Array("XKIT".utf8)
            + random.bytes(countIn: 12 ... 100)
        return MalformedRequest(label: label, chunks: [(bytes, [])], ending: .readReplies,
                                replies: [(ENOENT, .exact("module \(name) is not loaded")),
                                          (EPROTO, .prefix("invalid frame: magic is 58 4b 49 54"))],
                                closesConnection: true)
    }

    // MARK: Building blocks

    private func closing(_ label: String, _ bytes: [UInt8], status: Int32, _ message: MessageCheck) -> MalformedRequest {
        MalformedRequest(label: label, chunks: [(bytes, [])], ending: .readReplies, replies: [(status, message)], closesConnection: true)
    }

    private func failing(_ label: String, _ request: Request, status: Int32, _ message: MessageCheck) -> MalformedRequest {
        let payload = request.encodedPayload().bytes
        return MalformedRequest(label: label, chunks: [(frameHeader(type: request.type.rawValue, length: UInt32(payload.count)) + payload, [])],
                                ending: .readReplies, replies: [(status, message)], closesConnection: false)
    }

    /// Returns a module name of 1 to 300 printable ASCII characters, sometimes with a multi-byte
    /// character in it.
    private mutating func randomName() -> String {
        var name = String((0 ..< Int.random(in: 1 ... 300, using: &random)).map { _ in
            Character(Unicode.Scalar(UInt8.random(in: 0x21 ... 0x7E, using: &random)))
        })
        if Bool.random(using: &random) { name += "é✓" }
        return name
    }

    /// Returns a request type other than `excluded` and `readLog`, because a `readLog` in
    /// follow mode keeps the connection open.
    private mutating func requestType(excluding excluded: MessageType? = nil) -> MessageType {
        let types = MessageType.allCases.filter { $0.isRequest && $0 != .readLog && $0 != excluded }
        return types.randomElement(using: &random)!
    }
}

/// Returns a frame header with every field given: magic, version, type, length, reserved.
func frameHeader(type: UInt16, version: UInt16 = DaemonProtocol.version, length: UInt32, reserved: UInt32 = 0) -> [UInt8] {
    DaemonProtocol.magic + littleEndianBytes(version) + littleEndianBytes(type) + littleEndianBytes(length) + littleEndianBytes(reserved)
}

func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}
