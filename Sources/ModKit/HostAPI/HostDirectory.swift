import CModKit

/// Every live `ModuleHost` of the process, so that calls from module code that carry no owner
/// (`printk`, `symbol_get`, `atexit`) can find the module and host they belong to.
enum HostDirectory {
    private struct WeakHost {
        weak var host: ModuleHost?
    }

    private static let hosts = LockedValue<[WeakHost]>([])

    static func add(_ host: ModuleHost) {
        hosts.withLock { $0.append(WeakHost(host: host)) }
    }

    static func remove(_ host: ModuleHost) {
        hosts.withLock { $0.removeAll { $0.host == nil || $0.host === host } }
    }

    static var all: [ModuleHost] {
        hosts.withLock { $0.compactMap(\.host) }
    }

    /// The module whose memory contains `address`.
    static func module(containing address: UInt64) -> Module? {
        for host in all {
            if let module = host.registry.withLock({ $0.modules.values.first { $0.contains(address) } }) {
                return module
            }
        }
        return nil
    }

    /// The Swift record of a `struct module`, while the module is registered.
    static func module(of structure: UnsafeMutablePointer<CModKit.module>?) -> Module? {
        guard let host = structure?.pointee.host else { return nil }
        return Unmanaged<Module>.fromOpaque(host).takeUnretainedValue()
    }
}
