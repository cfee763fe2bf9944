import Glibc

/// The bytes of one object file, owned and immutable once read.
///
/// Every read goes through bounds-checked accessors; the parser establishes the bounds of each
/// section before anything else reads it.
public final class ObjectImage: @unchecked Sendable {
    /// The name used in error messages (the path as the user gave it).
    public let name: String
    let base: UnsafeMutableRawPointer
    public let count: Int
    /// For an image read from a file: the file's identity as `fstat` reported it before the
    /// read, and the time the read began.
    let source: (identity: FileIdentity, readStart: timespec)?

    /// Copies `bytes` into a new image.
    public init(name: String, bytes: some Collection<UInt8>) {
        self.name = name
        self.count = bytes.count
        self.source = nil
        self.base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
        UnsafeMutableRawBufferPointer(start: base, count: count).copyBytes(from: bytes)
    }

    /// Reads the file at `path`.
    public init(contentsOf path: String, name: String? = nil) throws(LoadError) {
        let displayName = name ?? path
        let readStart = timespec.now
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw LoadError(.unreadableFile, file: displayName, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw LoadError(.unreadableFile, file: displayName, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw LoadError(.unreadableFile, file: displayName, "not a regular file")
        }
        let size = Int(status.st_size)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 16)
        var done = 0
        while done < size {
            let n = read(fd, buffer + done, size - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let reason = n < 0 ? String(cString: strerror(errno)) : "file shrank while reading"
                buffer.deallocate()
                throw LoadError(.unreadableFile, file: displayName, "cannot read: \(reason)")
            }
            done += n
        }
        self.name = displayName
        self.base = buffer
        self.count = size
        self.source = (FileIdentity(path: path, status: status), readStart)
    }

    deinit { base.deallocate() }

    /// The whole image as a buffer; valid while `self` is alive.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    func contains(offset: Int, size: Int) -> Bool {
        offset >= 0 && size >= 0 && offset <= count && size <= count - offset
    }

    @inline(__always) func u8(_ offset: Int) -> UInt8 { base.load(fromByteOffset: offset, as: UInt8.self) }
    @inline(__always) func u16(_ offset: Int) -> UInt16 { UInt16(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
    @inline(__always) func u32(_ offset: Int) -> UInt32 { UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    @inline(__always) func u64(_ offset: Int) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }

    /// Returns whether the NUL-terminated string at `offset`, which the caller has checked lies in
    /// a string table that ends with NUL, is valid UTF-8.
    func isUTF8CString(at offset: Int) -> Bool {
        var index = offset
        while true {
            let byte = u8(index)
            if byte == 0 { return true }
            if byte >= 0x80 { break }
            index += 1
        }
        return String(validatingCString: (base + offset).assumingMemoryBound(to: CChar.self)) != nil
    }

    /// The NUL-terminated string at `offset`, which the caller has checked lies in a string table
    /// that ends with NUL.
    func cString(at offset: Int) -> String {
        String(cString: (base + offset).assumingMemoryBound(to: CChar.self))
    }
}
