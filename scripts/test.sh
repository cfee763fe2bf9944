#!/usr/bin/env bash
# Runs every test. First the whole suite runs with `swift test`. Then the linker, reference
# counting, owned registry and daemon tests run under AddressSanitizer (scripts/asan.sh, built
# in .build/asan) and under ThreadSanitizer (scripts/tsan.sh, built in .build/tsan). Last comes
# a short fuzzer run when scripts/fuzz.sh exists. Every step runs even after one fails, and the
# script exits non-zero if any step failed or a sanitizer reported anything.
#
#   usage: scripts/test.sh
set -uo pipefail

repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repository"

failed=()

# Runs one step and notes its name when it fails.
step() {
    local name="$1"
    shift
    echo "test.sh: $name: $*" >&2
    local start=$SECONDS
    "$@"
    local status=$?
    echo "test.sh: $name finished with status $status after $((SECONDS - start)) s" >&2
    if [ "$status" -ne 0 ]; then failed+=("$name"); fi
}

step "swift test" swift test
step "AddressSanitizer" scripts/asan.sh
step "ThreadSanitizer" scripts/tsan.sh

# Fuzzing: a 90-second fuzzer run, when the script is present.
if [ -f scripts/fuzz.sh ]; then
    step "fuzzer" bash scripts/fuzz.sh 90
fi

if (( ${#failed[@]} > 0 )); then
    echo "test.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "test.sh: all tests passed" >&2
