/// The lifecycle of a module, as in Linux: `unformed` while it is being linked, `coming`
/// during its init, `live` once init succeeded, `going` from the start of its removal.
public enum ModuleState: String, Sendable {
    case unformed
    case coming
    case live
    case going

    /// The word `lsmod` prints for the state, as in `/proc/modules`.
    public var procName: String {
        switch self {
        case .unformed: "Unformed"
        case .coming: "Loading"
        case .live: "Live"
        case .going: "Unloading"
        }
    }
}
