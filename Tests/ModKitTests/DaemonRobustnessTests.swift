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
    /// A small maximum image size keeps the allocation for a lying load length small.
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
