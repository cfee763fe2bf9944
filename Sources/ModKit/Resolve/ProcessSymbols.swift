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
        /// Counts the times the cache was dropped.
        var epoch: UInt64 = 0
    }

    private static let cache = LockedValue(Cache())

    /// Starts a batch of lookups: drops the cache if the set of libraries changed. Returns the
    /// cache's epoch, which changes whenever lookups may start to return other addresses, or
    /// nil when the dynamic linker does not report its changes.
    @discardableResult
    static func revalidate() -> UInt64? {
        var adds: UInt64 = 0, subs: UInt64 = 0
        guard modkit_library_generation(&adds, &subs) == 0 else {
            cache.withLock { $0 = Cache(epoch: $0.epoch + 1) }
            return nil
        }
        return cache.withLock { cache in
            if cache.adds != adds || cache.subs != subs {
                cache = Cache(adds: adds, subs: subs, addresses: [:], epoch: cache.epoch + 1)
            }
            return cache.epoch
        }
    }

    /// Returns the address of each of `names` in the process, nil for those it lacks, taking
    /// the cache's lock once for all remembered names.
    static func addresses(of names: [String]) -> [UInt64?] {
        var found: [UInt64?] = []
        var unknown: [Int] = []
        cache.withLock { cache in
            found.reserveCapacity(names.count)
            for (index, name) in names.enumerated() {
                if let known = cache.addresses[name] {
                    found.append(known)
                } else {
                    found.append(nil)
                    unknown.append(index)
                }
            }
        }
        for index in unknown { found[index] = address(of: names[index]) }
        return found
    }

    /// The address of `name` in the process, or nil.
    static func address(of name: String) -> UInt64? {
        if let known = cache.withLock({ $0.addresses[name] }) { return known }
        let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name).map { UInt64(UInt(bitPattern: $0)) }
        cache.withLock { $0.addresses[name] = .some(address) }
        return address
    }
}
