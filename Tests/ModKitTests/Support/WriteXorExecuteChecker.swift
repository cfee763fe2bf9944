import Glibc
@testable import ModKit
import Testing

/// Checks, after every stage of every load and removal in the test process, that no mapping of
/// the process is both writable and executable.
///
/// The checker is the loader's `ModuleHost.stageObserver`, which `LoaderTestHooks` installs
/// before the first load. A violation is recorded as an issue of the test that made the load,
/// and kept in `violations`.
enum WriteXorExecuteChecker {
    /// A mapping found writable and executable after a stage.
    struct Violation: Sendable, CustomStringConvertible {
        var stage: LoaderStage
        var module: String
        var mapping: String

        var description: String { "after stage '\(stage.rawValue)' of module \(module): \(mapping)" }
    }

    private struct State {
        var violations: [Violation] = []
        var checks: [LoaderStage: Int] = [:]
    }

    private static let state = LockedValue(State())

    private static let installed: Bool = {
        ModuleHost.stageObserver = { stage, module in check(after: stage, of: module) }
        return true
    }()

    /// Installs the checker, once per process.
    static func install() {
        _ = installed
    }

    /// Every violation found so far in this process.
    static var violations: [Violation] {
        state.withLock { $0.violations }
    }

    /// How many times the checker ran after each stage, in this process.
    static var checks: [LoaderStage: Int] {
        state.withLock { $0.checks }
    }

    private static func check(after stage: LoaderStage, of module: String) {
        guard let lines = writableAndExecutableLines() else {
            Issue.record("cannot read /proc/self/maps after stage '\(stage.rawValue)' of module \(module): \(Errno(errno))")
            return
        }
        let found = lines.map { Violation(stage: stage, module: module, mapping: $0) }
        state.withLock { state in
            state.checks[stage, default: 0] += 1
            state.violations += found
        }
        for violation in found {
            Issue.record("mapping writable and executable \(violation)")
        }
    }

    /// Returns the lines of a maps file, by default this process's, whose permissions include
    /// both `w` and `x`, or nil if the file cannot be read.
    ///
    /// It runs after every stage of every load, so it works on raw bytes with `memchr` and
    /// builds strings only for the lines it returns. `MemoryMaps` builds one for every line,
    /// which takes milliseconds in a debug build.
    static func writableAndExecutableLines(path: String = "/proc/self/maps") -> [String]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var capacity = 1 << 16
        var contents = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
        defer { contents.deallocate() }
        var size = 0
        while true {
            if size == capacity {
                let larger = UnsafeMutableRawPointer.allocate(byteCount: capacity * 2, alignment: 1)
                larger.copyMemory(from: contents, byteCount: size)
                contents.deallocate()
                contents = larger
                capacity *= 2
            }
            let count = read(descriptor, contents + size, capacity - size)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { break }
            size += count
        }

        // Each line starts "start-end perms ...", with perms such as "rwxp".
        var lines: [String] = []
        var lineStart = contents
        let end = contents + size
        while lineStart < end {
            let lineEnd = memchr(lineStart, 0x0a, end - lineStart).map { UnsafeMutableRawPointer($0) } ?? end
            if let space = memchr(lineStart, 0x20, lineEnd - lineStart), UnsafeMutableRawPointer(space) + 3 < lineEnd {
                let permissions = UnsafeMutableRawPointer(space)
                if permissions.load(fromByteOffset: 2, as: UInt8.self) == UInt8(ascii: "w"),
                   permissions.load(fromByteOffset: 3, as: UInt8.self) == UInt8(ascii: "x") {
                    let bytes = UnsafeRawBufferPointer(start: lineStart, count: lineEnd - lineStart)
                    lines.append(String(decoding: bytes, as: UTF8.self))
                }
            }
            lineStart = lineEnd + 1
        }
        return lines
    }
}
