/// Which of the process's own symbols (libc, libm, libdl and the host executable's dynamic
/// symbols, found through the dynamic linker) modules may bind to.
public enum ProcessSymbolPolicy: Sendable, Equatable {
    /// Any symbol the dynamic linker can find. The default for `modkit exec`.
    case allowAll
    /// Only the listed names; every other process symbol is treated as missing.
    case allowList(Set<String>)
    /// None: modules see only other modules' exports and the ModKit host API.
    case deny

    func permits(_ name: String) -> Bool {
        switch self {
        case .allowAll: true
        case .allowList(let names): names.contains(name)
        case .deny: false
        }
    }
}
