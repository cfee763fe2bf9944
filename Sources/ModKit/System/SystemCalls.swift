import CModKit
import Glibc

/// An errno value from a failed system call.
public struct Errno: Error, Equatable, CustomStringConvertible, Sendable {
    public var rawValue: Int32
    public init(_ rawValue: Int32) { self.rawValue = rawValue }
    public var description: String { String(cString: strerror(rawValue)) }
}

/// The memory system calls the loader makes, in one place, so tests can make any of them fail.
///
/// Install a fault hook with `SystemCalls.faultHook`; it sees each call by name before it is
/// made and can return an errno to make that call fail instead.
public enum SystemCalls {
    /// The name of a wrapped call, as passed to the fault hook.
    public enum Call: String, Sendable {
        case mmap, mprotect, munmap, madvise, membarrier
    }

    /// Sees each call by name before it is made and can return an errno to make that call fail
    /// instead. It also covers the membarrier that removal issues from C, in
    /// `modkit_membarrier_private_expedited`. Loads and removals read it without a lock, so set it
    /// before they start.
    nonisolated(unsafe) public static var faultHook: (@Sendable (Call) -> Int32?)? {
        didSet {
            modkit_set_membarrier_fault_hook(faultHook == nil ? nil : { SystemCalls.faultHook?(.membarrier) ?? 0 })
        }
    }

    @inline(__always) private static func injectedFault(_ call: Call) -> Errno? {
        guard let hook = faultHook, let code = hook(call) else { return nil }
        return Errno(code)
    }

    /// Maps anonymous memory at `hint`; with `fixedNoReplace`, fails with EEXIST rather than
    /// replacing an existing mapping.
    static func mapAnonymous(at hint: UInt64?, size: Int, protection: Int32,
                             fixedNoReplace: Bool = false, noReserve: Bool = false) -> Result<UInt64, Errno> {
        if let fault = injectedFault(.mmap) { return .failure(fault) }
        var flags = MAP_PRIVATE | MAP_ANONYMOUS
        if fixedNoReplace { flags |= MAP_FIXED_NOREPLACE }
        if noReserve { flags |= MAP_NORESERVE }
        let address = mmap(hint.flatMap { UnsafeMutableRawPointer(bitPattern: UInt($0)) }, size, protection, flags, -1, 0)
        guard let address, address != MAP_FAILED else { return .failure(Errno(errno)) }
        return .success(UInt64(UInt(bitPattern: address)))
    }

    /// Replaces the pages of `[address, address + size)` with fresh inaccessible ones, which
    /// releases their memory but keeps the address range reserved.
    static func resetToReserved(_ address: UInt64, size: Int) -> Result<Void, Errno> {
        if let fault = injectedFault(.mmap) { return .failure(fault) }
        let result = mmap(UnsafeMutableRawPointer(bitPattern: UInt(address)), size, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0)
        guard let result, result != MAP_FAILED else { return .failure(Errno(errno)) }
        return .success(())
    }

    static func protect(_ address: UInt64, size: Int, protection: Int32) -> Result<Void, Errno> {
        if let fault = injectedFault(.mprotect) { return .failure(fault) }
        guard mprotect(UnsafeMutableRawPointer(bitPattern: UInt(address)), size, protection) == 0 else {
            return .failure(Errno(errno))
        }
        return .success(())
    }

    static func unmap(_ address: UInt64, size: Int) -> Result<Void, Errno> {
        if let fault = injectedFault(.munmap) { return .failure(fault) }
        guard munmap(UnsafeMutableRawPointer(bitPattern: UInt(address)), size) == 0 else {
            return .failure(Errno(errno))
        }
        return .success(())
    }

    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
}
