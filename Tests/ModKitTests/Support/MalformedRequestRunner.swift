import Glibc
import ModKit

/// Sends `MalformedRequest`s to a daemon and compares its replies with the expected ones.
final class MalformedRequestRunner {
    private let socketPath: String
    private let directory: TemporaryDirectory
    private let objectPath: String
    /// The connection that requests which keep it open share.
    private var shared: UnixSocket?

    /// Writes the files that passed descriptors refer to into `directory`.
    init(socketPath: String, directory: TemporaryDirectory, objectPath: String, image: [UInt8]) throws {
        self.socketPath = socketPath
        self.directory = directory
        self.objectPath = objectPath
        var random = SeededGenerator(seed: 7)
        try Self.write(random.bytes(4096), to: directory.file("garbage.bin"))
        try Self.write([], to: directory.file("empty.bin"))
        try Self.write(Array(image.prefix(image.count / 2)), to: directory.file("truncated.o"))
    }

    /// Sends `request` and returns what differed from the expected replies; empty when
    /// everything matched.
    func run(_ request: MalformedRequest) -> [String] {
        let socket: UnixSocket
        do {
            if request.keepsConnection, let shared {
                socket = shared
            } else {
                socket = try UnixSocket.connect(to: socketPath)
                if request.keepsConnection { shared = socket }
            }
        } catch {
            return ["\(request.label): cannot connect: \(error)"]
        }

        var problems = send(request, on: socket)
        switch request.ending {
        case .closeAtOnce:
            socket.close()
            return problems
        case .shutdownThenReadReplies:
            socket.shutdownSending()
        case .readReplies:
            break
        }
        problems += readReplies(request, on: socket)
        if request.closesConnection {
            if (try? socket.receive(count: 1, deadline: .now + .seconds(10))) != .some(nil) {
                problems.append("\(request.label): the daemon did not close the connection")
            }
            socket.close()
        } else if !problems.isEmpty {
            // A shared connection in an unknown state is not reused.
            socket.close()
            shared = nil
        }
        return problems
    }

    /// Closes the shared connection.
    func close() {
        shared?.close()
        shared = nil
    }

    // MARK: Sending

    /// Sends every chunk. A failed send is noted but not fatal, because a daemon that rejects
    /// a frame early may close before the rest arrives; the replies decide.
    private func send(_ request: MalformedRequest, on socket: UnixSocket) -> [String] {
        for chunk in request.chunks {
            var opened: [Int32] = []
            defer { for descriptor in opened { Glibc.close(descriptor) } }
            var passed: [Int32] = []
            for kind in chunk.descriptors {
                guard let descriptor = open(kind, connection: socket, opened: &opened) else {
                    return ["\(request.label): cannot open a descriptor for \(kind): \(Errno(errno))"]
                }
                passed.append(descriptor)
            }
            do {
                try sendPassingDescriptors(socket, chunk.bytes, passed)
            } catch {
                return request.closesConnection ? [] : ["\(request.label): send failed: \(error)"]
            }
        }
        return []
    }

    /// Opens the descriptor `kind` stands for; adds what the caller must close to `opened`.
    private func open(_ kind: PassedDescriptor, connection: UnixSocket, opened: inout [Int32]) -> Int32? {
        let descriptor: Int32
        switch kind {
        case .directory: descriptor = Glibc.open(directory.path, O_RDONLY | O_DIRECTORY)
        case .nullDevice: descriptor = Glibc.open("/dev/null", O_RDONLY)
        case .pipe:
            var ends: [Int32] = [-1, -1]
            guard Glibc.pipe(&ends) == 0 else { return nil }
            opened += ends
            return ends[0]
        case .connectionSocket: return connection.descriptor
        case .pathOnlyObject: descriptor = Glibc.open(objectPath, Self.openPathOnly)
        case .writeOnlyFile: descriptor = Glibc.open(directory.file("garbage.bin"), O_WRONLY)
        case .emptyFile: descriptor = Glibc.open(directory.file("empty.bin"), O_RDONLY)
        case .garbageFile: descriptor = Glibc.open(directory.file("garbage.bin"), O_RDONLY)
        case .truncatedObjectFile: descriptor = Glibc.open(directory.file("truncated.o"), O_RDONLY)
        }
        guard descriptor >= 0 else { return nil }
        opened.append(descriptor)
        return descriptor
    }

    /// Linux's `O_PATH`, which Glibc exports to Swift only with `_GNU_SOURCE`.
    private static let openPathOnly: Int32 = 0o10000000

    // MARK: Receiving

    private func readReplies(_ request: MalformedRequest, on socket: UnixSocket) -> [String] {
        var problems: [String] = []
        for (index, expected) in request.replies.enumerated() {
            let reply: Reply
            do {
                reply = try readReply(socket)
            } catch {
                return problems + ["\(request.label): reply \(index + 1) not received: \(error)"]
            }
            if reply.status != expected.status {
                problems.append("\(request.label): reply \(index + 1) has status \(reply.status), expected \(expected.status) (\(reply.message))")
            }
            if !expected.message.matches(reply.message) {
                problems.append("\(request.label): reply \(index + 1) has message '\(reply.message)', expected \(expected.message)")
            }
        }
        return problems
    }

    /// Reads frames until the final reply and decodes it.
    private func readReply(_ socket: UnixSocket) throws -> Reply {
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            guard let header = try socket.receive(count: DaemonProtocol.headerSize, deadline: deadline) else {
                throw SubprocessError(description: "the daemon closed the connection before its reply")
            }
            let frame = try header.withUnsafeBytes { buffer in
                Result { () throws(ProtocolError) in try FrameHeader.decode(buffer) { _ in DaemonProtocol.maxSmallPayload } }
            }.get()
            guard let payload = try socket.receive(count: frame.payloadLength, deadline: deadline) else {
                throw SubprocessError(description: "the daemon closed the connection inside a reply")
            }
            if frame.type == .reply { return try Reply(payload: payload[...]) }
        }
    }

    private static func write(_ bytes: [UInt8], to path: String) throws {
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard descriptor >= 0 else { throw SubprocessError(description: "cannot create \(path): \(Errno(errno))") }
        defer { Glibc.close(descriptor) }
        guard bytes.withUnsafeBytes({ Glibc.write(descriptor, $0.baseAddress, $0.count) }) == bytes.count else {
            throw SubprocessError(description: "cannot write \(path): \(Errno(errno))")
        }
    }
}

/// Sends `bytes` on `socket` with `descriptors` as one `SCM_RIGHTS` message on the first byte.
/// `UnixSocket` passes at most one descriptor, so two or more go through `sendmsg` here.
func sendPassingDescriptors(_ socket: UnixSocket, _ bytes: [UInt8], _ descriptors: [Int32]) throws(SocketError) {
    guard descriptors.count > 1, !bytes.isEmpty else {
        try socket.send(bytes, passing: descriptors.first)
        return
    }
    let headerSpace = (MemoryLayout<cmsghdr>.size + 7) & ~7
    let dataSize = descriptors.count * MemoryLayout<Int32>.size
    let controlSpace = headerSpace + (dataSize + 7) & ~7
    let control = UnsafeMutableRawPointer.allocate(byteCount: controlSpace, alignment: MemoryLayout<cmsghdr>.alignment)
    defer { control.deallocate() }
    control.initializeMemory(as: UInt8.self, repeating: 0, count: controlSpace)
    let header = control.bindMemory(to: cmsghdr.self, capacity: 1)
    header.pointee.cmsg_len = headerSpace + dataSize
    header.pointee.cmsg_level = SOL_SOCKET
    header.pointee.cmsg_type = Int32(SCM_RIGHTS)
    for (index, descriptor) in descriptors.enumerated() {
        control.storeBytes(of: descriptor, toByteOffset: headerSpace + index * MemoryLayout<Int32>.size, as: Int32.self)
    }

    // One byte carries the descriptors; the rest follows as ordinary data.
    var first = bytes[0]
    let sent = withUnsafeMutablePointer(to: &first) { byte in
        var vector = iovec(iov_base: UnsafeMutableRawPointer(byte), iov_len: 1)
        return withUnsafeMutablePointer(to: &vector) { vectorPointer in
            var message = msghdr(msg_name: nil, msg_namelen: 0, msg_iov: vectorPointer, msg_iovlen: 1,
                                 msg_control: control, msg_controllen: controlSpace, msg_flags: 0)
            return sendmsg(socket.descriptor, &message, Int32(MSG_NOSIGNAL))
        }
    }
    guard sent == 1 else { throw SocketError("sendmsg", errno: errno) }
    try socket.send(Array(bytes.dropFirst()))
}
