import CModKit
import Glibc
import ModKit
import Synchronization

/// The measurements of `modkit bench refcount`. Each loop runs on threads that start together,
/// and its figure is the median over several runs.
struct RefcountBenchmarks {
    let host: ModuleHost
    let module: Module
    /// Get and put pairs per thread in one run.
    let iterations: Int
    /// Runs per figure.
    let runs: Int

    typealias GetPutLoop = @convention(c) (UInt) -> UInt
    typealias ThreadSlotLoop = @convention(c) (UInt, UnsafeMutablePointer<UInt>) -> UInt
    typealias CPUSlotLoop = @convention(c) (UInt, UnsafeMutablePointer<UInt>, UInt) -> UInt

    /// The loops that the benchmark times.
    enum Loop: CaseIterable {
        /// `try_module_get` and `module_put` in a loop of the module's C code. The calling
        /// threads enter the module while the benchmark holds a reference on it.
        case moduleFromC
        /// `Module.tryGet()` and `put()` in a Swift loop.
        case moduleFromSwift
        /// An increment and a decrement of one `Atomic<Int>` that every thread shares.
        case sharedAtomic
        /// A plain increment and decrement of the thread's own counter, with the load of
        /// `live` between them, in the module's C code.
        case floorThreadSlot
        /// The floor with the counter of the CPU the thread runs on, from `sched_getcpu`.
        case floorCPUSlot
    }

    /// Returns nanoseconds per pair for every loop and number of threads, each the median of
    /// `runs` runs of `iterations` pairs on each thread. A run lasts from the start of the
    /// threads until the last one ends.
    ///
    /// Runs go round-robin over the loops and the thread counts, so that a stretch of time in
    /// which the machine runs slower touches every figure alike rather than a few of them.
    /// Each thread takes and drops one reference before the start, as a thread that has counted
    /// before would have. A thread's first count gives it its counter block, and a loop that
    /// started before that would run on the slow path (see `__modkit_thread_counters`).
    func nanosecondsPerPair(threadCounts: [Int]) -> [Loop: [Int: Double]] {
        let module = module
        let bodies = Dictionary(uniqueKeysWithValues: Loop.allCases.map { ($0, body(of: $0, threads: threadCounts.max() ?? 1)) })
        var samples: [Loop: [Int: [Double]]] = [:]
        for _ in 0 ..< runs {
            for loop in Loop.allCases {
                for threads in threadCounts {
                    let elapsed = BenchThread.runTogether(threads, prepare: { if module.tryGet() { module.put() } }, bodies[loop]!)
                    samples[loop, default: [:]][threads, default: []].append(Self.nanoseconds(elapsed) / Double(iterations))
                }
            }
        }
        return samples.mapValues { $0.mapValues(Self.median) }
    }

    /// Returns what each thread of a run of `loop` executes, given its thread number, for runs of
    /// at most `threads` threads.
    private func body(of loop: Loop, threads: Int) -> @Sendable (_ thread: Int) -> Void {
        let iterations = iterations
        switch loop {
        case .moduleFromC:
            let entry = function("bench_get_put", as: GetPutLoop.self)
            return { _ in _ = entry(UInt(iterations)) }
        case .moduleFromSwift:
            let module = module
            return { _ in
                var got = 0
                for _ in 0 ..< iterations where module.tryGet() {
                    got += 1
                    module.put()
                }
                precondition(got == iterations, "a get failed on a live module")
            }
        case .sharedAtomic:
            let counter = SharedCounter()
            return { _ in
                for _ in 0 ..< iterations {
                    counter.value.wrappingAdd(1, ordering: .acquiring)
                    counter.value.wrappingSubtract(1, ordering: .releasing)
                }
            }
        case .floorThreadSlot:
            let entry = function("bench_floor_thread_slot", as: ThreadSlotLoop.self)
            let slots = PaddedCounters(count: threads)
            return { thread in _ = entry(UInt(iterations), slots.counter(thread)) }
        case .floorCPUSlot:
            let entry = function("bench_floor_cpu_slot", as: CPUSlotLoop.self)
            let cpus = max(1, sysconf(Int32(_SC_NPROCESSORS_CONF)))
            let slots = PaddedCounters(count: cpus)
            return { _ in _ = entry(UInt(iterations), slots.counter(0), UInt(cpus)) }
        }
    }

    /// Returns the microseconds that stopping an idle module takes, counted as a removal counts them:
    /// `modkit_ref_stop` (which issues membarrier in membarrier mode) and `modkit_ref_sum`. The
    /// module is restarted after each sample and stays loaded.
    func idleStopMicroseconds(samples: Int) -> Double {
        let structure = module.modulePointer
        var durations: [Double] = []
        for _ in 0 ..< samples {
            let start = ContinuousClock.now
            let stopped = modkit_ref_stop(structure)
            let count = modkit_ref_sum(structure.pointee.ref_index)
            let elapsed = ContinuousClock.now - start
            modkit_ref_restart(structure)
            precondition(stopped == 0 && count == 0, "stopping the idle module failed (\(stopped)) or found \(count) references")
            durations.append(Self.nanoseconds(elapsed) / 1000)
        }
        return Self.median(durations)
    }

    /// Returns the microseconds from the `module_put` that drops the last reference to the return of a
    /// removal with `wait` that sleeps on another thread, and of the whole removal of an idle
    /// module, as medians. Each sample loads the module `object` again.
    static func removalMicroseconds(host: ModuleHost, object: String, name: String, samples: Int) throws -> (afterLastPut: Double, idle: Double) {
        var afterLastPut: [Double] = []
        var idle: [Double] = []
        for _ in 0 ..< samples {
            let waited = try host.load(files: [object])
            precondition(waited.tryGet(), "a get failed on a live module")
            let end = LockedValue<ContinuousClock.Instant?>(nil)
            let remover = BenchThread {
                try? host.remove(name, wait: true)
                end.withLock { $0 = ContinuousClock.now }
            }
            remover.waitUntilAsleep()
            let lastPut = ContinuousClock.now
            waited.put()
            remover.join()
            guard let finished = end.withLock({ $0 }), host.module(named: name) == nil else {
                throw BenchmarkError(description: "the waiting removal of module \(name) failed")
            }
            afterLastPut.append(nanoseconds(finished - lastPut) / 1000)

            _ = try host.load(files: [object])
            let start = ContinuousClock.now
            try host.remove(name)
            idle.append(nanoseconds(ContinuousClock.now - start) / 1000)
        }
        return (median(afterLastPut), median(idle))
    }

    private func function<F>(_ symbol: String, as type: F.Type) -> F {
        guard let address = module.address(of: symbol) else {
            preconditionFailure("the benchmark module defines no \(symbol)")
        }
        return unsafeBitCast(address, to: type)
    }

    static func nanoseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9
    }

    static func median(_ samples: [Double]) -> Double {
        guard !samples.isEmpty else { return 0 }
        let sorted = samples.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}

/// A benchmark that could not run to the end.
struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
}

/// One atomic counter for every thread of the shared-counter loop.
private final class SharedCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// Counters one cache line apart, so that threads that each use their own do not share a line.
private final class PaddedCounters: @unchecked Sendable {
    private let storage: UnsafeMutablePointer<UInt>
    private let count: Int

    init(count: Int) {
        self.count = count
        storage = .allocate(capacity: 8 * count)
        storage.initialize(repeating: 0, count: 8 * count)
    }

    deinit { storage.deallocate() }

    func counter(_ index: Int) -> UnsafeMutablePointer<UInt> {
        storage + 8 * index
    }
}
