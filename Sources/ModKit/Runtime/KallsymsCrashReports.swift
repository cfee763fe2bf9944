import CModKit
import Glibc
import Synchronization

/// Publishes kallsyms to the C crash handler as plain arrays, which the handler reads without
/// locks or allocation.
enum CrashReports {
    private struct State {
        /// The recent publications, newest last. A replaced one stays alive because a
        /// handler on another thread may still be reading it.
        var publications: [Publication] = []
    }

    /// One published `modkit_crash_table`, with the Swift tables whose symbol arrays and
    /// names it points into.
    private final class Publication {
        let tables: [KallsymsTable]
        let owners: UnsafeMutablePointer<modkit_crash_owner>
        let table: UnsafeMutablePointer<modkit_crash_table>
        /// The taint strings the owners and the table point to.
        private var strings: [UnsafeMutablePointer<CChar>] = []

        init(tables: [KallsymsTable], taint: Kallsyms.TaintLetters) {
            self.tables = tables
            owners = .allocate(capacity: max(tables.count, 1))
            let hostTaint = strdup(taint.host)!
            strings.append(hostTaint)
            for (position, kallsymsTable) in tables.enumerated() {
                let kind: Int32 = switch kallsymsTable.ownerKind {
                case .executable: Int32(MODKIT_CRASH_EXECUTABLE.rawValue)
                case .library: Int32(MODKIT_CRASH_LIBRARY.rawValue)
                case .module: Int32(MODKIT_CRASH_MODULE.rawValue)
                }
                owners[position] = modkit_crash_owner(start: kallsymsTable.start, end: kallsymsTable.end,
                                                      name: kallsymsTable.crashOwnerName, kind: kind,
                                                      symbols: kallsymsTable.crashSymbols, count: kallsymsTable.count,
                                                      taint: nil)
                if kallsymsTable.ownerKind == .module, let letters = taint.modules[kallsymsTable.ownerName] {
                    let string = strdup(letters)!
                    strings.append(string)
                    owners[position].taint = UnsafePointer(string)
                }
            }
            table = .allocate(capacity: 1)
            table.initialize(to: modkit_crash_table(owners: owners, count: tables.count, taint: hostTaint))
        }

        deinit {
            owners.deallocate()
            table.deallocate()
            for string in strings { free(string) }
        }
    }

    // NOTE: a handler that is still reading a publication after this many newer ones were
    // made reads freed memory. Keeping every publication instead would leak one per module
    // change.
    private static let retainedPublications = 16

    private static let state = Mutex(State())

    /// Makes `tables` the symbols that crash reports print.
    static func publish(_ tables: [KallsymsTable], taint: Kallsyms.TaintLetters) {
        state.withLock { state in
            let publication = Publication(tables: tables, taint: taint)
            modkit_crash_publish(publication.table)
            state.publications.append(publication)
            if state.publications.count > retainedPublications {
                state.publications.removeFirst(state.publications.count - retainedPublications)
            }
        }
    }
}

extension ModuleHost {
    /// Installs a handler for SIGSEGV, SIGBUS, SIGILL and SIGFPE raised by any code of the
    /// process, module code included. It prints a crash report like a kernel oops: the
    /// signal and the faulting address, the registers, a backtrace symbolized through
    /// `kallsyms` and the loaded modules. The process then dies of the signal as it would
    /// have.
    ///
    /// The backtrace follows frame pointers, so it is complete only through code built with
    /// `-fno-omit-frame-pointer`, which `modkit cflags` includes. The alternate signal stack,
    /// used when the stack overflows, is set up for the calling thread only.
    public func installCrashReports() throws(Errno) {
        kallsyms.enableCrashReports()
        if modkit_crash_install() != 0 {
            throw Errno(errno)
        }
    }
}
