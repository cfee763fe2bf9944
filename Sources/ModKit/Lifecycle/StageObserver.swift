/// A point in a module's load or removal after which `ModuleHost.stageObserver` runs.
enum LoaderStage: String, CaseIterable, Sendable {
    case validate, layOut = "lay out", resolve, relocate, protect, form, parameters, initialize = "init"
    case exit, unmap
}

extension ModuleHost {
    /// Called after each completed stage of every load and removal in the process, with the
    /// stage and the module's name, on the thread doing the work.
    ///
    /// Tests install a checker here, for example one that reads `/proc/self/maps` to check that
    /// no mapping is writable and executable. It is nil in production, where the loader only
    /// tests it for nil. Set it before any load starts, because it is read without a lock.
    nonisolated(unsafe) static var stageObserver: (@Sendable (LoaderStage, String) -> Void)?

    @inline(__always) func observe(_ stage: LoaderStage, _ module: String) {
        if let observer = Self.stageObserver { observer(stage, module) }
    }
}
