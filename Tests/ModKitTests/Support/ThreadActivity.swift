import Foundation

/// What the kernel reports about a thread of this process, from `/proc/self/task/ID`.
enum ThreadActivity {
    #if arch(x86_64)
    static let futexSystemCall = 202
    #elseif arch(arm64)
    static let futexSystemCall = 98
    #endif

    /// How many times the thread gave up the processor by blocking, from `voluntary_ctxt_switches`.
    /// Each sleep of a waiting removal adds one.
    static func voluntarySwitches(_ threadID: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/task/\(threadID)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("voluntary_ctxt_switches:") {
            return Int(line.dropFirst("voluntary_ctxt_switches:".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// Whether the thread is blocked in the futex system call, from the first field of `syscall`.
    static func isBlockedInFutex(_ threadID: Int32) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/self/task/\(threadID)/syscall", encoding: .utf8),
              let first = text.split(separator: " ").first else { return false }
        return Int(first) == futexSystemCall
    }
}
