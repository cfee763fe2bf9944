import CModKit
import Glibc

/// The process's own symbols (libc, libm, the host executable), looked up through the dynamic
/// linker and remembered.
///
/// A remembered address stays valid until the process loads or unloads a shared library,
/// which the dynamic linker counts; the cache is dropped whenever those counts change.
enum ProcessSymbols {
    private struct Cache {
        var adds: UInt64 = 0
        var subs: UInt64 = 0
        var addresses: [String: UInt64?] = [:]
    }

    private static let cache = LockedValue(Cache())

    /// Starts a batch of lookups: drops the cache if the set of libraries changed.
    static func revalidate() {
        var adds: UInt64 = 0, subs: UInt64 = 0
        guard modkit_library_generation(&adds, &subs) == 0 else {
            cache.withLock { $0 = Cache() }
            return
        }
        cache.withLock { cache in
            if cache.adds != adds || cache.subs != subs {
                cache = Cache(adds: adds, subs: subs, addresses: [:])
            }
        }
    }

    /// The address of `name` in the process, or nil.
    static func address(of name: String) -> UInt64? {
        if let known = cache.withLock({ $0.addresses[name] }) { return known }
        let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name).map { UInt64(UInt(bitPattern: $0)) }
        cache.withLock { $0.addresses[name] = .some(address) }
        return address
    }
}
