import Foundation
import Glibc
import ModKit
import Testing

/// A real `modkit host` under a stream of malformed requests drawn from a fixed seed. Every
/// request gets the expected error reply, or none when the client hangs up, and nothing is
/// loaded. Afterwards the daemon loads a module correctly and has as many descriptors and
/// threads as it started with.
@Suite("modkit host robustness")
struct DaemonRobustnessTests {
    static let seed: UInt64 = 0x4D4B_4954_2026
    static let requestCount = 1000
    /// The daemon's `--max-image-size`; announced load lengths above it get `EMSGSIZE`.
    static let maxImageSize = 1 << 20

    @Test("1,000 malformed requests leave the daemon serving")
    func malformedRequests() async throws {
        let directory = try TemporaryDirectory(prefix: "robustness")
        defer { directory.remove() }
        let object = try await compileExample("hello", in: directory)
        let image = try Array(Data(contentsOf: URL(fileURLWithPath: object)))
        // The read timeout only has to outlast the run, because the shared connection idles
        // while other requests go through their own connections.
        let daemon = try await RunningDaemon(in: directory, arguments: ["--max-image-size", "\(Self.maxImageSize)", "--read-timeout", "120"])
        let processID = daemon.process.processIdentifier
        let before = try await ProcessUsage.settled(processID, atMost: nil)

        let runner = try MalformedRequestRunner(socketPath: daemon.socket, directory: directory, objectPath: object, image: image)
        var generator = MalformedRequestGenerator(random: SeededGenerator(seed: Self.seed), image: image, maxImageSize: Self.maxImageSize)
        var problems: [String] = []
        for index in 0 ..< Self.requestCount {
            problems += runner.run(generator.request(index))
        }
        runner.close()
        let mismatches = problems.count
        #expect(mismatches == 0, "the first mismatches:\n\(problems.prefix(20).joined(separator: "\n"))")
        #expect(daemon.process.isRunning)

        let after = try await ProcessUsage.settled(processID, atMost: before)
        #expect(after.descriptors <= before.descriptors, "open descriptors: \(before.descriptors) before, \(after.descriptors) after")
        #expect(after.threads <= before.threads, "threads: \(before.threads) before, \(after.threads) after")
        // Freed memory stays with the allocator, and AddressSanitizer keeps freed blocks in
        // quarantine, so only growth beyond any of those is a leak.
        #expect(after.residentKilobytes < before.residentKilobytes + 300 << 10,
                "resident memory: \(before.residentKilobytes) kB before, \(after.residentKilobytes) kB after")

        let client = try DaemonClient(path: daemon.socket, replyTimeout: .seconds(60))
        defer { client.close() }
        let load = try client.send(.loadImage(name: "hello.o", image: image[...], parameters: "whom=robustness"))
        #expect(load.succeeded, "\(load.message)")
        #expect(try load.fields.string(.name) == "hello")
        #expect(try load.fields.string(.state) == "Live")
        let list = try client.send(.list)
        let modules = try list.fields.records(.module).map { try ModuleRecord($0) }
        #expect(modules.map(\.name) == ["hello"])
        #expect(modules.map(\.files) == [["hello.o"]])

        #expect(try await daemon.stop() == 0)
        let log = daemon.standardError
        #expect(logLines(log, containing: "loaded module").count == 1, "\(log.suffix(2000))")
        #expect(logLines(log, containing: "hello: Hello, robustness") == ["info: hello: Hello, robustness"])
        for sign in ["Fatal error", "fatal signal", "Sanitizer", "Segmentation fault"] {
            #expect(!log.contains(sign), "the daemon log contains '\(sign)':\n\(log.suffix(4000))")
        }
    }

    @Test("lying load lengths cost no memory")
    func lyingLoadLengths() async throws {
        let directory = try TemporaryDirectory(prefix: "robustness")
        defer { directory.remove() }
        // The clients must still be waiting when the test reads the daemon's usage, which on a
        // loaded machine can take longer than the default read timeout of 10 s.
        let daemon = try await RunningDaemon(in: directory, arguments: ["--read-timeout", "300"])
        let processID = daemon.process.processIdentifier
        let before = try await ProcessUsage.settled(processID, atMost: nil)

        // Each client announces a load of the largest size allowed by default and sends one byte.
        let clients = 16
        let length = UInt32(64 << 20)
        var sockets: [UnixSocket] = []
        for _ in 0 ..< clients {
            let socket = try UnixSocket.connect(to: daemon.socket)
            try socket.send(frameHeader(type: MessageType.loadImage.rawValue, length: length) + [3])
            sockets.append(socket)
        }
        let deadline = ContinuousClock.now + .seconds(120)
        while try ProcessUsage(processID).threads < before.threads + clients, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(300))
        let waiting = try ProcessUsage(processID)
        #expect(waiting.threads >= before.threads + clients, "\(waiting)")
        // Buffers of the announced size would reserve 1 GiB in all, and a daemon that filled
        // them grew by over 100 MiB here. Buffers that grow with the data need 1 MiB per client.
        #expect(waiting.residentKilobytes - before.residentKilobytes < 64 << 10,
                "resident memory: \(before.residentKilobytes) kB before, \(waiting.residentKilobytes) kB while clients wait")

        for socket in sockets {
            socket.shutdownSending()
            let header = try #require(try socket.receive(count: DaemonProtocol.headerSize, deadline: .now + .seconds(20)))
            let frame = try header.withUnsafeBytes { buffer in
                Result { () throws(ProtocolError) in try FrameHeader.decode(buffer) { _ in DaemonProtocol.maxSmallPayload } }
            }.get()
            let payload = try #require(try socket.receive(count: frame.payloadLength, deadline: .now + .seconds(20)))
            let reply = try Reply(payload: payload[...])
            #expect(reply.status == ECONNRESET)
            #expect(reply.message == "receive: Connection reset by peer")
            socket.close()
        }
        let client = try DaemonClient(path: daemon.socket, replyTimeout: .seconds(60))
        defer { client.close() }
        #expect(try client.send(.list).succeeded)
        #expect(try await daemon.stop() == 0)
    }
}

/// What a process holds, read from `/proc/PID`.
struct ProcessUsage: CustomStringConvertible {
    var descriptors: Int
    var threads: Int
    var residentKilobytes: Int

    init(_ processID: pid_t) throws {
        let manager = FileManager.default
        descriptors = try manager.contentsOfDirectory(atPath: "/proc/\(processID)/fd").count
        threads = try manager.contentsOfDirectory(atPath: "/proc/\(processID)/task").count
        let status = try String(contentsOfFile: "/proc/\(processID)/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        residentKilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// Reads the usage once the daemon's connection threads have finished. With a `limit`,
    /// that is when the usage is no higher, and without one when two reads 200 ms apart agree.
    /// After 10 s it returns the last read.
    static func settled(_ processID: pid_t, atMost limit: ProcessUsage?) async throws -> ProcessUsage {
        let deadline = ContinuousClock.now + .seconds(10)
        var usage = try ProcessUsage(processID)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            let next = try ProcessUsage(processID)
            if let limit, next.descriptors <= limit.descriptors, next.threads <= limit.threads { return next }
            if limit == nil, next.descriptors == usage.descriptors, next.threads == usage.threads { return next }
            usage = next
        }
        return usage
    }

    var description: String { "\(descriptors) descriptors, \(threads) threads, \(residentKilobytes) kB resident" }
}
