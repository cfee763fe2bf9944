#!/usr/bin/env bash
# Runs the reference counting, owned registry, host lifetime and stress tests under
# ThreadSanitizer, and exits non-zero if a test fails or ThreadSanitizer reports anything, in the
# test process or in a child process that a test starts.
#
#   usage: scripts/tsan.sh
#
# Builds in $SWIFT_SCRATCH_PATH, default .build/tsan, so that the sanitizer build does not
# replace the ordinary one. ThreadSanitizer builds count references with seq_cst atomics and
# run in fence mode, because ThreadSanitizer does not model membarrier or fences.
set -uo pipefail

repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scratch="${SWIFT_SCRATCH_PATH:-$repository/.build/tsan}"
filter='ReferenceCount|OwnedRegistry|HostLifetime|ModuleStress'

reports="$(mktemp -d "${TMPDIR:-/tmp}/modkit-tsan.XXXXXX")"
trap 'rm -rf "$reports"' EXIT

# log_path sends each process's reports to its own file, so that reports from the child
# processes of exit tests are not lost in their captured output.
export TSAN_OPTIONS="halt_on_error=1 die_after_fork=0 log_path=$reports/report ${TSAN_OPTIONS:-}"
swift test --package-path "$repository" --scratch-path "$scratch" --sanitize=thread --filter "$filter"
status=$?

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
