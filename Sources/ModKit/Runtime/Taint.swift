/// Reasons a module, or the whole host, can no longer be trusted to behave as ModKit intends,
/// with the letters Linux prints for the same reasons.
///
/// Taint is sticky: a host keeps every flag any of its modules ever brought, even after the
/// module is removed.
public struct Taint: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `P`: a module whose license is not GPL-compatible was loaded.
    public static let proprietaryModule = Taint(rawValue: 1 << 0)
    /// `F`: a module was loaded by force, or without version information for its imports.
    public static let forcedLoad = Taint(rawValue: 1 << 1)
    /// `R`: a module was removed by force, while references to it were still held.
    public static let forcedRemoval = Taint(rawValue: 1 << 2)
    /// `E`: a module without a trusted signature was loaded.
    public static let unsignedModule = Taint(rawValue: 1 << 3)

    /// Every flag with its letter, in the order Linux prints them.
    public static let letters: [(flag: Taint, letter: Character)] = [
        (.proprietaryModule, "P"), (.forcedLoad, "F"), (.forcedRemoval, "R"), (.unsignedModule, "E"),
    ]

    /// The letters of the flags that are set, such as `PE`; empty when untainted.
    public var description: String {
        String(Self.letters.filter { contains($0.flag) }.map(\.letter))
    }

    /// Parses letters as `description` prints them; nil on an unknown letter.
    public init?(letters: String) {
        var taint: Taint = []
        for letter in letters {
            guard let entry = Self.letters.first(where: { $0.letter == letter }) else { return nil }
            taint.insert(entry.flag)
        }
        self = taint
    }
}

extension ModuleHost {
    /// Every flag this host's modules have brought since it started.
    public var taint: Taint { hostTaint.withLock { $0 } }

    /// Taints `module` and the host with `flags`, logging `reason` at `level` (a warning by
    /// default) the first time each flag reaches the host.
    func addTaint(_ flags: Taint, to module: Module?, reason: String, level: Int = 4) {
        let moduleTaint: Taint = registry.withLock { _ in
            guard let module else { return [] }
            module.taint.formUnion(flags)
            return module.taint
        }
        let (added, host) = hostTaint.withLock { taint in
            let new = flags.subtracting(taint)
            taint.formUnion(flags)
            return (new, taint)
        }
        kallsyms.noteTaint(host: host, module: module, moduleTaint: moduleTaint)
        if !added.isEmpty {
            log(level, module: module?.name, "\(reason); the host is tainted (\(added))")
        }
    }
}
