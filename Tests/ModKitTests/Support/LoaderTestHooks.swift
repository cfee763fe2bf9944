/// Installs the loader's test hooks, once per process: the W^X checker on the stage observer and
/// the system call fault hook.
///
/// Loads read both hooks without a lock, so they must be in place before the first load starts.
/// The helpers that every loading test goes through first (`ObjectBuilder`, `withModuleArea`,
/// `ModuleTestHost`) call `install`, and a caller that arrives while another installs waits
/// for it to finish.
enum LoaderTestHooks {
    private static let installed: Bool = {
        WriteXorExecuteChecker.install()
        _ = SystemCallFaults.shared
        return true
    }()

    static func install() {
        _ = installed
    }
}
