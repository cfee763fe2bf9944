import CModKit

/// Why a registry lookup did not run its entry.
public struct RegistryError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        case notFound
        case duplicate
        /// The owning module is initializing or being removed, so its code must not be entered.
        case goingAway
    }

    public var kind: Kind
    public var key: String
    public var message: String
    public var description: String { message }
}

/// A table of entries owned by modules, for host subsystems that keep module function pointers.
///
/// Calling an entry holds a reference on its owner for the duration of the call, which is the
/// rule every caller of module code through a pointer must follow: while the owner is being
/// removed the call fails with `goingAway` instead of running into unmapped code. The lookup
/// and the `try_module_get` happen under the table's lock, and a module unregisters its entries
/// under the same lock in its exit, so an owner found here is still mapped when it is counted.
public final class OwnedRegistry<Entry>: @unchecked Sendable {
    public struct Item: @unchecked Sendable {
        public var key: String
        /// The owning module's `struct module`, or nil for entries of the host itself.
        public var owner: UnsafeMutablePointer<CModKit.module>?
        public var entry: Entry
    }

    /// What kind of thing the registry holds, for messages: "command".
    public let noun: String
    private let items = LockedValue<[String: Item]>([:])

    public init(noun: String) {
        self.noun = noun
    }

    public func register(_ key: String, owner: UnsafeMutablePointer<CModKit.module>?, entry: Entry) throws(RegistryError) {
        let inserted = items.withLock { items in
            guard items[key] == nil else { return false }
            items[key] = Item(key: key, owner: owner, entry: entry)
            return true
        }
        guard inserted else {
            throw RegistryError(kind: .duplicate, key: key, message: "\(noun) \(key) is already registered")
        }
    }

    /// Removes `key` if `owner` registered it; returns whether it did.
    @discardableResult
    public func unregister(_ key: String, owner: UnsafeMutablePointer<CModKit.module>?) -> Bool {
        items.withLock { items in
            guard let item = items[key], item.owner == owner else { return false }
            items[key] = nil
            return true
        }
    }

    /// Removes every entry `owner` left behind and returns their keys.
    public func removeAll(ownedBy owner: UnsafeMutablePointer<CModKit.module>) -> [String] {
        items.withLock { items in
            let keys = items.values.filter { $0.owner == owner }.map(\.key).sorted()
            for key in keys { items[key] = nil }
            return keys
        }
    }

    /// The registered items, sorted by key.
    public var all: [Item] {
        items.withLock { $0.values.sorted { $0.key < $1.key } }
    }

    /// Looks up `key` and runs `body` on its entry while holding a reference on the owner.
    ///
    /// When `caller` is the entry's owner, no reference is taken: the call comes from code
    /// running in that module, which whoever entered it (or the loader, during its init)
    /// already keeps loaded. This is what lets a module's init call back into an entry it has
    /// just registered, while a reference from anyone else would fail until init returns.
    public func withEntry<R>(_ key: String, calledBy caller: UnsafeMutablePointer<CModKit.module>? = nil,
                             _ body: (Entry) throws -> R) throws -> R {
        let found: Result<(item: Item, counted: Bool), RegistryError> = items.withLock { items in
            guard let item = items[key] else {
                return .failure(RegistryError(kind: .notFound, key: key, message: "\(noun) \(key) not found"))
            }
            if caller != nil && item.owner == caller { return .success((item, false)) }
            guard try_module_get(item.owner) else {
                let name = item.owner.flatMap { $0.pointee.name.map { String(cString: $0) } } ?? key
                return .failure(RegistryError(kind: .goingAway, key: key, message: "\(name) is going away"))
            }
            return .success((item, true))
        }
        let (item, counted) = try found.get()
        defer { if counted { module_put(item.owner) } }
        return try body(item.entry)
    }
}
