import Glibc

/// The validated objects, symbols and layout of recent loads from files, and the last linked
/// image of each, so that loading unchanged files again skips reading, validating, laying out
/// and, at the same base, relocating them.
///
/// A record belongs to one list of paths. It is used without reading the files when `stat`
/// reports the identity each file had when it was read (`FileIdentity`) and that identity had
/// settled by then. Otherwise the loader reads the files, and the record is used only when
/// their bytes equal the cached ones. Files that fail to load are never cached.
///
/// The cache keeps at most `recordLimit` records and `byteLimit` bytes of object and image
/// copies in ordinary memory, and drops the least recently used records beyond that. It never
/// keeps module memory mapped.
final class LoadCache: Sendable {
    static let shared = LoadCache()

    static let recordLimit = 8
    static let byteLimit = 64 << 20

    /// The validated objects, merged symbols and layout of one list of files, as a load made
    /// them before it mapped module memory. Immutable.
    final class Entry: @unchecked Sendable {
        let objects: [ObjectFile]
        let architecture: any RelocationArchitecture.Type
        let symbols: ModuleSymbols
        let info: ModuleInfo
        let name: String
        let layout: ModuleLayout
        let externalLookups = ExternalLookupMemo()

        init(job: LinkJob) {
            objects = job.objects
            architecture = job.architecture
            symbols = job.symbols
            info = job.info
            name = job.name
            layout = job.layout
        }

        var byteCount: Int { objects.reduce(0) { $0 + $1.image.count } }
    }

    private struct Record {
        var paths: [String]
        var entry: Entry
        var identities: [FileIdentity]
        /// Whether `identities` alone show that the files are unchanged.
        var isSettled: Bool
        var linked: LinkedImage?
        var lastUse: UInt64

        var byteCount: Int { entry.byteCount + (linked?.byteCount ?? 0) }
    }

    private struct State {
        var records: [Record] = []
        var useCount: UInt64 = 0

        mutating func use(_ index: Int) -> Entry {
            useCount += 1
            records[index].lastUse = useCount
            return records[index].entry
        }
    }

    private let state = LockedValue(State())

    /// Returns the entry of `paths` if `stat` shows every file unchanged since it was read.
    func settledEntry(for paths: [String]) -> Entry? {
        guard let cached = state.withLock({ state in
            state.records.first { $0.paths == paths && $0.isSettled }.map(\.identities)
        }) else { return nil }
        for (path, identity) in zip(paths, cached) where FileIdentity.current(path: path) != identity {
            return nil
        }
        return state.withLock { state in
            guard let index = state.records.firstIndex(where: { $0.paths == paths && $0.identities == cached }) else { return nil }
            return state.use(index)
        }
    }

    /// Returns the entry of the files that `images` were just read from if it has the same
    /// bytes, and records the files' new identities in it.
    func entry(matching images: [ObjectImage]) -> Entry? {
        guard let sources = Self.sources(of: images) else { return nil }
        let paths = sources.map(\.identity.path)
        guard let entry = state.withLock({ state in state.records.first { $0.paths == paths }?.entry }) else { return nil }
        let sameBytes = zip(entry.objects, images).allSatisfy { object, image in
            object.image.count == image.count && memcmp(object.image.base, image.base, image.count) == 0
        }
        guard sameBytes else { return nil }
        return state.withLock { state in
            guard let index = state.records.firstIndex(where: { $0.entry === entry }) else { return nil }
            state.records[index].identities = sources.map(\.identity)
            state.records[index].isSettled = sources.allSatisfy { $0.identity.isSettled(at: $0.readStart) }
            return state.use(index)
        }
    }

    /// Adds the entry of a load from the files that `images` were read from, replacing any
    /// earlier entry of the same paths. Images that were not read from files are not cached.
    func insert(_ entry: Entry, images: [ObjectImage]) {
        guard let sources = Self.sources(of: images) else { return }
        let paths = sources.map(\.identity.path)
        state.withLock { state in
            state.records.removeAll { $0.paths == paths }
            state.useCount += 1
            state.records.append(Record(paths: paths, entry: entry, identities: sources.map(\.identity),
                                        isSettled: sources.allSatisfy { $0.identity.isSettled(at: $0.readStart) },
                                        linked: nil, lastUse: state.useCount))
            Self.evict(&state)
        }
    }

    /// Returns the linked image of `entry` if relocating at `base` with `externals` would
    /// produce it.
    func linkedImage(of entry: Entry, base: UInt64, externals: [UInt64]) -> LinkedImage? {
        state.withLock { state in
            state.records.first { $0.entry === entry }?.linked
        }.flatMap { $0.matches(base: base, externals: externals) ? $0 : nil }
    }

    /// Returns the base address of the linked image of `entry`, if it has one.
    func linkedImageBase(of entry: Entry) -> UInt64? {
        state.withLock { state in state.records.first { $0.entry === entry }?.linked?.base }
    }

    /// Keeps `linked` as the linked image of `entry`, in place of the previous one.
    func store(_ linked: LinkedImage, for entry: Entry) {
        state.withLock { state in
            guard let index = state.records.firstIndex(where: { $0.entry === entry }) else { return }
            state.records[index].linked = linked
            Self.evict(&state)
        }
    }

    /// Drops every record; for tests.
    func removeAll() {
        state.withLock { $0.records = [] }
    }

    private static func sources(of images: [ObjectImage]) -> [(identity: FileIdentity, readStart: timespec)]? {
        let sources = images.compactMap(\.source)
        return sources.count == images.count && !sources.isEmpty ? sources : nil
    }

    /// Drops the least recently used records until the limits hold.
    private static func evict(_ state: inout State) {
        var bytes = state.records.reduce(0) { $0 + $1.byteCount }
        while state.records.count > recordLimit || (bytes > byteLimit && !state.records.isEmpty) {
            let oldest = state.records.indices.min { state.records[$0].lastUse < state.records[$1].lastUse }!
            bytes -= state.records[oldest].byteCount
            state.records.remove(at: oldest)
        }
    }
}
