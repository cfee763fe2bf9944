import Glibc

/// What `stat` reports about a file that changes whenever its contents may have changed: the
/// device and inode, the size, and the modification and status change times in nanoseconds.
///
/// The kernel sets `st_ctime` to the current time on every write, rename or `utimensat`, and
/// no system call sets it to another value. A file whose identity is unchanged was therefore
/// not written, unless two writes fell into one tick of the file system's clock.
/// `isSettled(at:)` decides when that can no longer happen.
struct FileIdentity: Equatable, Sendable {
    var path: String
    var device: UInt64
    var inode: UInt64
    var size: Int
    var modificationTime: timespec
    var changeTime: timespec

    init(path: String, status: stat) {
        self.path = path
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        size = Int(status.st_size)
        modificationTime = status.st_mtim
        changeTime = status.st_ctim
    }

    /// Returns the identity of the file at `path` now, or nil if it cannot be examined or is
    /// not a regular file.
    static func current(path: String) -> FileIdentity? {
        var status = stat()
        guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return nil }
        return FileIdentity(path: path, status: status)
    }

    /// How long after a write another write may still get the same `st_ctime`: the tick of
    /// the kernel's coarse clock, which file timestamps come from, plus the granularity of
    /// file systems that store whole seconds or two-second steps.
    // NOTE: a system clock set backwards, or a network file system whose server clock lags the
    // local one by more than this, can defeat the check.
    static let timestampMargin = timespec(tv_sec: 2, tv_nsec: 0)

    /// Whether every later write to the file must change its identity: true when its status
    /// changed at least `timestampMargin` before `readStart`, the time its contents began to
    /// be read.
    func isSettled(at readStart: timespec) -> Bool {
        let limit = readStart.subtracting(Self.timestampMargin)
        return changeTime.isBefore(limit)
    }

    static func == (lhs: FileIdentity, rhs: FileIdentity) -> Bool {
        lhs.path == rhs.path && lhs.device == rhs.device && lhs.inode == rhs.inode && lhs.size == rhs.size
            && lhs.modificationTime.isEqual(to: rhs.modificationTime) && lhs.changeTime.isEqual(to: rhs.changeTime)
    }
}

extension timespec {
    /// The current time of `CLOCK_REALTIME`, the clock that file timestamps follow.
    static var now: timespec {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return time
    }

    func isEqual(to other: timespec) -> Bool {
        tv_sec == other.tv_sec && tv_nsec == other.tv_nsec
    }

    func isBefore(_ other: timespec) -> Bool {
        tv_sec != other.tv_sec ? tv_sec < other.tv_sec : tv_nsec < other.tv_nsec
    }

    func subtracting(_ other: timespec) -> timespec {
        var result = timespec(tv_sec: tv_sec - other.tv_sec, tv_nsec: tv_nsec - other.tv_nsec)
        if result.tv_nsec < 0 {
            result.tv_sec -= 1
            result.tv_nsec += 1_000_000_000
        }
        return result
    }
}
