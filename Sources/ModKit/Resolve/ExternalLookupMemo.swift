/// The host API and process symbols that one module's undefined globals resolved to, kept
/// with the module's load cache entry so that loading the module again skips looking them up.
///
/// The results stay valid while the process symbol cache keeps its epoch, so while no shared
/// library was loaded or unloaded, and while the process symbol policy is the same. The host
/// API table never changes. Other modules' exports come and go, so the resolver looks those up
/// on every load.
final class ExternalLookupMemo: Sendable {
    /// For each name of `ModuleSymbols.undefinedNames`: its address and where it was found, or
    /// nil when neither the host API nor the process has it.
    typealias Results = [(address: UInt64, origin: ExternalOrigin)?]

    private struct Record {
        var epoch: UInt64
        var policy: ProcessSymbolPolicy
        var results: Results
    }

    private let record = LockedValue<Record?>(nil)

    /// Returns the results found at `epoch` under `policy`, or nil.
    func results(epoch: UInt64, policy: ProcessSymbolPolicy) -> Results? {
        record.withLock { record in
            guard let record, record.epoch == epoch, record.policy == policy else { return nil }
            return record.results
        }
    }

    func store(_ results: Results, epoch: UInt64, policy: ProcessSymbolPolicy) {
        record.withLock { $0 = Record(epoch: epoch, policy: policy, results: results) }
    }
}
