import Glibc
import Testing
@testable import ModKit

@Suite("daemon protocol")
struct DaemonProtocolTests {
    private func decodeHeader(_ bytes: [UInt8], limit: Int = 100) throws(ProtocolError) -> FrameHeader {
        try bytes.withUnsafeBytes { buffer in
            Result { () throws(ProtocolError) in try FrameHeader.decode(buffer) { _ in limit } }
        }.get()
    }

    @Test("header round trip")
    func headerRoundTrip() throws {
        let bytes = FrameHeader(type: .list, payloadLength: 12).encoded()
        #expect(bytes == [0x4D, 0x4B, 0x49, 0x54, 1, 0, 5, 0, 12, 0, 0, 0, 0, 0, 0, 0])
        #expect(try decodeHeader(bytes) == FrameHeader(type: .list, payloadLength: 12))
    }

    @Test("header errors", arguments: [
        ([0x4D, 0x4B, 0x49, 0x55, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0], EPROTO, "invalid frame: magic is 4d 4b 49 55, expected 4d 4b 49 54 ('MKIT')"),
        ([0x4D, 0x4B, 0x49, 0x54, 9, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0], EPROTONOSUPPORT,
         "protocol version 9 is not supported; this modkit speaks version 1, so use a matching modkit"),
        ([0x4D, 0x4B, 0x49, 0x54, 1, 0, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0], EPROTO, "invalid frame: unknown message type 99"),
        ([0x4D, 0x4B, 0x49, 0x54, 1, 0, 5, 0, 0, 0, 0, 0, 1, 0, 0, 0], EPROTO, "invalid frame: reserved header word is not zero"),
        ([0x4D, 0x4B, 0x49, 0x54, 1, 0, 5, 0, 101, 0, 0, 0, 0, 0, 0, 0], EMSGSIZE, "list payload of 101 bytes exceeds the limit of 100 bytes"),
    ] as [([UInt8], Int32, String)])
    func headerErrors(bytes: [UInt8], status: Int32, message: String) {
        #expect(throws: ProtocolError.self) { try decodeHeader(bytes) }
        do {
            _ = try decodeHeader(bytes)
        } catch {
            #expect(error.status == status)
            #expect(error.message == message)
        }
    }

    @Test("requests round trip")
    func requestsRoundTrip() throws {
        let requests: [Request] = [
            .daemonInfo, .list, .listCommands,
            .loadImage(name: "a.o", image: [1, 2, 3][...], parameters: "x=1"),
            .loadFile(name: "b.o", parameters: ""),
            .remove(name: "m", wait: true, force: false, timeout: .milliseconds(1500)),
            .moduleInfo(name: "m"), .symbols(module: nil), .symbols(module: "m"),
            .readLog(follow: true), .callCommand(name: "greet", arguments: ["a", "", "-b"]),
        ]
        for request in requests {
            let decoded = try Request(type: request.type, payload: request.encodedPayload().bytes[...])
            #expect(decoded.encodedPayload().bytes == request.encodedPayload().bytes, "\(request)")
            #expect(decoded.type == request.type)
        }
    }

    @Test("payload errors", arguments: [
        (MessageType.remove, [3, 0, 1, 0, 0, 0, 0x6D, 6, 0, 8, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0], "remove request has unknown flags 0x4"),
        (MessageType.list, [3, 0, 1, 0, 0, 0, 0x6D], "list request does not take field name"),
        (MessageType.moduleInfo, [3, 0, 1, 0, 0, 0, 0xFF], "field name is not valid UTF-8"),
        (MessageType.moduleInfo, [3, 0, 1, 0, 0, 0, 0x6D, 3, 0, 1, 0, 0, 0, 0x6E], "field name appears more than once"),
        (MessageType.readLog, [6, 0, 2, 0, 0, 0, 1, 0], "field flags has 2 bytes; an integer has 8"),
        (MessageType.list, [1, 0, 0], "truncated field header at payload offset 0"),
        (MessageType.loadImage, [3, 0, 1, 0, 0, 0, 0x6D], "loadImage request is missing field image"),
    ] as [(MessageType, [UInt8], String)])
    func payloadErrors(type: MessageType, payload: [UInt8], message: String) {
        do {
            _ = try Request(type: type, payload: payload[...])
            Issue.record("decoding succeeded")
        } catch {
            #expect(error.message == message)
        }
    }

    @Test("log ring keeps the newest records")
    func logRing() {
        let log = DaemonLog(capacity: 3, consoleLevel: -1)
        for index in 1 ... 5 { log.log(6, module: "m", "line \(index)\n") }
        #expect(log.records().map(\.text) == ["line 3", "line 4", "line 5"])
        #expect(log.records(after: 4).map(\.sequence) == [5])
        log.log(-2, module: "m", "continued")
        #expect(log.records().last?.level == 6)
        log.log(3, module: nil, "two\nlines")
        #expect(log.records().suffix(2).map(\.text) == ["two", "lines"])
    }

    @Test("log timestamps as the kernel prints them")
    func logTimestamps() {
        #expect(DaemonLog.formatTimestamp(.zero) == "[    0.000000]")
        #expect(DaemonLog.formatTimestamp(.microseconds(1_234_567)) == "[    1.234567]")
        #expect(DaemonLog.formatTimestamp(.seconds(123_456)) == "[123456.000000]")
        let entry = LogEntry(sequence: 1, level: 4, timestamp: .milliseconds(5), module: nil, text: "stopped")
        #expect(DaemonLog.format(entry) == "[    0.005000] warn: modkit: stopped")
    }
}
