@testable import ModKit
import Testing

/// Checks, after every stage of every load and removal in the test process, that no mapping of
/// the process is both writable and executable.
///
/// The checker is the loader's `ModuleHost.stageObserver`. The test helpers that every loading
/// test goes through (`ObjectBuilder`, `withModuleArea`, `ModuleTestHost`) install it, so it is
/// in place before the first load. A violation is recorded as an issue of the test that made
/// the load, and kept in `violations`.
enum WriteXorExecuteChecker {
    /// A mapping found writable and executable after a stage.
    struct Violation: Sendable, CustomStringConvertible {
        var stage: LoaderStage
        var module: String
        var mapping: String

        var description: String { "after stage '\(stage.rawValue)' of module \(module): \(mapping)" }
    }

    private struct State {
        var violations: [Violation] = []
        var checks: [LoaderStage: Int] = [:]
    }

    private static let state = LockedValue(State())

    private static let installed: Bool = {
        ModuleHost.stageObserver = { stage, module in check(after: stage, of: module) }
        return true
    }()

    /// Installs the checker, once per process.
    static func install() {
        _ = installed
    }

    /// Every violation found so far in this process.
    static var violations: [Violation] {
        state.withLock { $0.violations }
    }

    /// How many times the checker ran after each stage, in this process.
    static var checks: [LoaderStage: Int] {
        state.withLock { $0.checks }
    }

    private static func check(after stage: LoaderStage, of module: String) {
        let found: [Violation]
        do {
            found = try MemoryMaps.writableAndExecutable().map { Violation(stage: stage, module: module, mapping: $0.line) }
        } catch {
            Issue.record("cannot read /proc/self/maps after stage '\(stage.rawValue)' of module \(module): \(error)")
            return
        }
        state.withLock { state in
            state.checks[stage, default: 0] += 1
            state.violations += found
        }
        for violation in found {
            Issue.record("mapping writable and executable \(violation)")
        }
    }
}
