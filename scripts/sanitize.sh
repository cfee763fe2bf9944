#!/usr/bin/env bash
# Runs the linker, reference counting, owned registry, host lifetime, stress and daemon tests
# under AddressSanitizer or ThreadSanitizer. Exits non-zero if a test fails or the sanitizer
# reports anything, in the test process or in a child process that a test starts (the daemon,
# modkit exec, the kmod tools).
#
#   usage: scripts/sanitize.sh address|thread
#
# Builds in $SWIFT_SCRATCH_PATH, default .build/asan or .build/tsan, so that the sanitizer
# build does not replace the ordinary one. ThreadSanitizer builds count references with
# seq_cst atomics and run in fence mode, because ThreadSanitizer does not model membarrier or
# fences.
set -uo pipefail

kind="${1:-}"
case "$kind" in
    address) short=asan; name=AddressSanitizer ;;
    thread) short=tsan; name=ThreadSanitizer ;;
    *)
        echo "usage: scripts/sanitize.sh address|thread" >&2
        exit 2
        ;;
esac

repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scratch="${SWIFT_SCRATCH_PATH:-$repository/.build/$short}"

# Each group runs in its own `swift test`. In one run, tests whose child processes run for
# minutes under a sanitizer hold the test process's few concurrency threads, and the daemon
# tests then time out waiting for their daemons.
groups=(
    'ReferenceCount|OwnedRegistry|HostLifetime|ModuleStress'
    'LoaderTests|RelocationTests|RelocationBoundaryTests|AArch64EncodingTests|SymbolSizeTests|MalformedObjectTests|GPLExportTests|ParameterTests|ExecTests'
    'Daemon|ParamCommandTests'
)
# Left out, each for a reason that the sanitizer itself causes:
# - RelocationTests/branchStub needs strlen more than 2 GiB from the module, but the strlen of
#   an instrumented process is the interceptor in the executable, next to the module area.
# - LeakTests measures the heap with glibc's malloc_stats and compares /proc/self/maps exactly,
#   but the sanitizer replaces malloc and maps its allocator's regions as they fill.
# - CrashReportTests and the kallsyms tests expect ModKit's own SIGSEGV report and libc's
#   malloc, which the sanitizer replaces with its own.
skip='RelocationTests/branchStub'

reports="$(mktemp -d "${TMPDIR:-/tmp}/modkit-$short.XXXXXX")"
trap 'rm -rf "$reports"' EXIT

# log_path sends each process's reports to its own file, so that reports from child processes
# are not lost in their captured output.
if [ "$kind" = address ]; then
    # LeakSanitizer is off. At exit it reports blocks that are still in use: reference cycles
    # of Foundation's Process objects, the hosts that tests deliberately keep alive, and module
    # names that only module memory points to, which LeakSanitizer does not scan. LeakTests
    # checks for leaks in the plain run instead.
    export ASAN_OPTIONS="halt_on_error=1 detect_leaks=0 log_path=$reports/report ${ASAN_OPTIONS:-}"
else
    export TSAN_OPTIONS="halt_on_error=1 die_after_fork=0 log_path=$reports/report ${TSAN_OPTIONS:-}"
fi

swift build --package-path "$repository" --scratch-path "$scratch" --sanitize="$kind" --build-tests || exit $?
status=0
for filter in "${groups[@]}"; do
    swift test --package-path "$repository" --scratch-path "$scratch" --sanitize="$kind" --skip-build \
        --filter "$filter" --skip "$skip" || status=$?
done

if compgen -G "$reports/report*" > /dev/null; then
    cat "$reports"/report* >&2
    echo "$short: $name reported the problems above" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "$short: swift test failed with status $status" >&2
    exit "$status"
fi
echo "$short: no $name reports"
