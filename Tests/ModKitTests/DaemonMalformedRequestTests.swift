import Foundation
import Glibc
import ModKit
import Testing

/// Broken requests sent to a real `modkit host`: each gets an error reply, the daemon loads
/// nothing, and it goes on serving other clients.
@Suite("modkit host with malformed requests")
struct DaemonMalformedRequestTests {
    /// Reads one frame from `socket` and decodes it as a final reply.
    private func readReply(_ socket: UnixSocket) throws -> Reply {
        let deadline = ContinuousClock.now + .seconds(20)
        let header = try #require(try socket.receive(count: DaemonProtocol.headerSize, deadline: deadline))
        let frame = try header.withUnsafeBytes { buffer in
            Result { () throws(ProtocolError) in try FrameHeader.decode(buffer) { _ in 1 << 20 } }
        }.get()
        #expect(frame.type == .reply)
        let payload = try #require(try socket.receive(count: frame.payloadLength, deadline: deadline))
        return try Reply(payload: payload[...])
    }

    /// Returns whether the daemon closed the connection: the next read is end of file.
    private func isClosed(_ socket: UnixSocket) throws -> Bool {
        try socket.receive(count: 1, deadline: .now + .seconds(20)) == nil
    }

    /// Checks that the daemon replies to a new client and has no module loaded.
    private func expectServingWithNothingLoaded(_ daemon: RunningDaemon) throws {
        let client = try DaemonClient(path: daemon.socket, replyTimeout: .seconds(20))
        defer { client.close() }
        let reply = try client.send(.list)
        #expect(reply.succeeded)
        #expect(try reply.fields.records(.module).isEmpty)
    }

    private func frame(type: UInt16, version: UInt16 = DaemonProtocol.version, length: UInt32, payload: [UInt8] = []) -> [UInt8] {
        var bytes = DaemonProtocol.magic
        for value in [version, type] { bytes += [UInt8(value & 0xff), UInt8(value >> 8)] }
        for value in [length, 0] { bytes += (0 ..< 4).map { UInt8((value >> (8 * $0)) & 0xff) } }
        return bytes + payload
    }

    @Test("random bytes get an invalid frame reply")
    func randomFrame() async throws {
        let directory = try TemporaryDirectory(prefix: "malformed")
        defer { directory.remove() }
        let daemon = try await RunningDaemon(in: directory)

        var generator = SystemRandomNumberGenerator()
        let garbage = [0x12, 0x34, 0x56, 0x78] + (0 ..< 60).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }
        let socket = try UnixSocket.connect(to: daemon.socket)
        try socket.send(garbage)
        let reply = try readReply(socket)
        #expect(reply.status == EPROTO)
        #expect(reply.message == "invalid frame: magic is 12 34 56 78, expected 4d 4b 49 54 ('MKIT')")
        #expect(try isClosed(socket))
        try expectServingWithNothingLoaded(daemon)
        try await daemon.stop()
    }

    @Test("wrong version is rejected")
    func wrongVersion() async throws {
        let directory = try TemporaryDirectory(prefix: "malformed")
        defer { directory.remove() }
        let daemon = try await RunningDaemon(in: directory)

        let socket = try UnixSocket.connect(to: daemon.socket)
        try socket.send(frame(type: MessageType.list.rawValue, version: 2, length: 0))
        let reply = try readReply(socket)
        #expect(reply.status == EPROTONOSUPPORT)
        #expect(reply.message == "protocol version 2 is not supported; this modkit speaks version 1, so use a matching modkit")
        #expect(try isClosed(socket))
        try expectServingWithNothingLoaded(daemon)
        try await daemon.stop()
    }

    @Test("huge length is rejected before reading")
    func hugeLength() async throws {
        let directory = try TemporaryDirectory(prefix: "malformed")
        defer { directory.remove() }
        let daemon = try await RunningDaemon(in: directory)

        let socket = try UnixSocket.connect(to: daemon.socket)
        try socket.send(frame(type: MessageType.loadImage.rawValue, length: 0xFFFF_FFF0))
        let reply = try readReply(socket)
        #expect(reply.status == EMSGSIZE)
        #expect(reply.message == "loadImage payload of 4294967280 bytes exceeds the limit of 67174400 bytes")
        #expect(try isClosed(socket))

        let small = try UnixSocket.connect(to: daemon.socket)
        try small.send(frame(type: MessageType.list.rawValue, length: 2_000_000))
        #expect(try readReply(small).message == "list payload of 2000000 bytes exceeds the limit of 1048576 bytes")
        try expectServingWithNothingLoaded(daemon)
        try await daemon.stop()
    }

    @Test("truncated image closes the connection")
    func truncatedImage() async throws {
        let directory = try TemporaryDirectory(prefix: "malformed")
        defer { directory.remove() }
        let object = try await compileExample("hello", in: directory)
        let image = try Array(Data(contentsOf: URL(fileURLWithPath: object)))
        let daemon = try await RunningDaemon(in: directory)

        // The header announces the whole request, but only half of it arrives.
        let payload = Request.loadImage(name: "hello.o", image: image[...], parameters: "").encodedPayload().bytes
        let socket = try UnixSocket.connect(to: daemon.socket)
        try socket.send(frame(type: MessageType.loadImage.rawValue, length: UInt32(payload.count), payload: Array(payload.prefix(payload.count / 2))))
        socket.shutdownSending()
        let reply = try readReply(socket)
        #expect(reply.status == ECONNRESET)
        #expect(reply.message == "receive: Connection reset by peer")
        #expect(try isClosed(socket))

        // A complete request whose image is a truncated object is a load error instead.
        let client = try DaemonClient(path: daemon.socket, replyTimeout: .seconds(20))
        let cut = try client.send(.loadImage(name: "hello.o", image: image.prefix(image.count / 2), parameters: ""))
        #expect(cut.status == ENOEXEC)
        #expect(cut.message.hasPrefix("hello.o: "))
        client.close()
        try expectServingWithNothingLoaded(daemon)
        try await daemon.stop()
    }

    @Test("stalled client is dropped after the read timeout")
    func stalledClient() async throws {
        let directory = try TemporaryDirectory(prefix: "malformed")
        defer { directory.remove() }
        let daemon = try await RunningDaemon(in: directory, arguments: ["--read-timeout", "0.5"])

        let socket = try UnixSocket.connect(to: daemon.socket)
        try socket.send(Array(frame(type: MessageType.list.rawValue, length: 0).prefix(8)))
        let start = ContinuousClock.now
        let reply = try readReply(socket)
        #expect(reply.status == ETIMEDOUT)
        #expect(reply.message == "receive: Connection timed out")
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(try isClosed(socket))
        try expectServingWithNothingLoaded(daemon)
        try await daemon.stop()
    }

    @Test("invalid payloads and misplaced descriptors")
    func invalidPayloads() async throws {
        let directory = try TemporaryDirectory(prefix: "malformed")
        defer { directory.remove() }
        let object = try await compileExample("hello", in: directory)
        let daemon = try await RunningDaemon(in: directory)

        let cases: [(bytes: [UInt8], descriptor: Int32?, status: Int32, message: String)] = [
            (frame(type: MessageType.list.rawValue, length: 6, payload: [0xE7, 0x03, 0, 0, 0, 0]), nil, EPROTO,
             "unknown field tag 999 at payload offset 0"),
            (frame(type: MessageType.remove.rawValue, length: 8, payload: [3, 0, 200, 0, 0, 0, 0x68, 0x69]), nil, EPROTO,
             "field name at payload offset 0 has length 200, but only 2 bytes follow"),
            (frame(type: MessageType.moduleInfo.rawValue, length: 0), nil, EPROTO, "moduleInfo request is missing field name"),
            (frame(type: MessageType.reply.rawValue, length: 0), nil, EPROTO, "message type reply is a reply, not a request"),
            (frame(type: 77, length: 0), nil, EPROTO, "invalid frame: unknown message type 77"),
            (frame(type: MessageType.list.rawValue, length: 0), open(object, O_RDONLY), EPROTO, "a list request cannot carry a file descriptor"),
        ]
        for testCase in cases {
            let socket = try UnixSocket.connect(to: daemon.socket)
            try socket.send(testCase.bytes, passing: testCase.descriptor)
            if let descriptor = testCase.descriptor { close(descriptor) }
            let reply = try readReply(socket)
            #expect(reply.status == testCase.status, "\(testCase.message)")
            #expect(reply.message == testCase.message)
            #expect(try isClosed(socket), "\(testCase.message)")
        }

        // Requests that are well formed but cannot be served keep the connection open.
        let client = try DaemonClient(path: daemon.socket, replyTimeout: .seconds(20))
        defer { client.close() }
        let noDescriptor = try client.send(.loadFile(name: "hello.o", parameters: ""))
        #expect(noDescriptor.status == EBADF)
        #expect(noDescriptor.message == "a loadFile request must carry the file's descriptor (SCM_RIGHTS)")
        let directoryDescriptor = open(directory.path, O_RDONLY)
        defer { close(directoryDescriptor) }
        let notFile = try client.send(.loadFile(name: "dir", parameters: ""), passing: directoryDescriptor)
        #expect(notFile.status == EINVAL)
        #expect(notFile.message == "dir: the passed descriptor is not a regular file")
        try expectServingWithNothingLoaded(daemon)
        try await daemon.stop()
    }

    @Test("oversized image is rejected")
    func oversizedImage() async throws {
        let directory = try TemporaryDirectory(prefix: "malformed")
        defer { directory.remove() }
        let object = try await compileExample("hello", in: directory)
        let size = try FileManager.default.attributesOfItem(atPath: object)[.size] as! Int
        let daemon = try await RunningDaemon(in: directory, arguments: ["--max-image-size", "1000"])

        let insert = try await daemon.run(["insmod", "hello.o"])
        #expect(insert.status == 1, "\(insert)")
        #expect(insert.standardError == """
            modkit insmod: ERROR: could not insert module hello.o: File too large
            hello.o: image of \(size) bytes exceeds the daemon's maximum image size of 1000 bytes (modkit host --max-image-size)

            """, "\(insert)")
        let passed = try await daemon.run(["insmod", "--pass-fd", "hello.o"])
        #expect(passed.status == 1, "\(passed)")
        #expect(passed.standardError == insert.standardError, "\(passed)")
        try expectServingWithNothingLoaded(daemon)
        try await daemon.stop()
    }
}
