#!/usr/bin/env bash
# Runs the linker, reference counting, owned registry, host lifetime, stress and daemon tests
# under ThreadSanitizer, and exits non-zero if a test fails or ThreadSanitizer reports
# anything, in the test process or in a child process that a test starts.
#
#   usage: scripts/tsan.sh
#
# Builds in $SWIFT_SCRATCH_PATH, default .build/tsan, so that the sanitizer build does not
# replace the ordinary one. ThreadSanitizer builds count references with seq_cst atomics and
# run in fence mode, because ThreadSanitizer does not model membarrier or fences.
set -uo pipefail

repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scratch="${SWIFT_SCRATCH_PATH:-$repository/.build/tsan}"

# Each group runs in its own `swift test`, so that slow child processes of one group cannot
# hold the test process's few concurrency threads while the daemon tests wait for a daemon.
groups=(
    'ReferenceCount|OwnedRegistry|HostLifetime|ModuleStress'
    'LoaderTests|RelocationTests|RelocationBoundaryTests|AArch64EncodingTests|SymbolSizeTests|MalformedObjectTests|GPLExportTests|ParameterTests|ExecTests'
    'Daemon|ParamCommandTests'
)
# Left out, each for a reason that ThreadSanitizer itself causes:
# - RelocationTests/branchStub needs strlen more than 2 GiB from the module, but the strlen of
#   an instrumented process is the interceptor in the executable, next to the module area.
# - LeakTests measures the heap with glibc's malloc_stats and compares /proc/self/maps exactly,
#   but ThreadSanitizer replaces malloc and maps its own memory as the process runs.
# - CrashReportTests and the kallsyms tests expect ModKit's own SIGSEGV report and libc's
#   malloc, which ThreadSanitizer replaces with its own.
skip='RelocationTests/branchStub'

reports="$(mktemp -d "${TMPDIR:-/tmp}/modkit-tsan.XXXXXX")"
trap 'rm -rf "$reports"' EXIT

# log_path sends each process's reports to its own file, so that reports from the child
# processes of exit tests are not lost in their captured output.
export TSAN_OPTIONS="halt_on_error=1 die_after_fork=0 log_path=$reports/report ${TSAN_OPTIONS:-}"

swift build --package-path "$repository" --scratch-path "$scratch" --sanitize=thread --build-tests || exit $?
status=0
for filter in "${groups[@]}"; do
    swift test --package-path "$repository" --scratch-path "$scratch" --sanitize=thread --skip-build \
        --filter "$filter" --skip "$skip" || status=$?
done

if compgen -G "$reports/report*" > /dev/null; then
    cat "$reports"/report* >&2
    echo "tsan: ThreadSanitizer reported the problems above" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "tsan: swift test failed with status $status" >&2
    exit "$status"
fi
echo "tsan: no ThreadSanitizer reports"
