#!/usr/bin/env bash
# Measures an insmod + rmmod round trip of the example hello module through a running
# `modkit host`: each cycle runs `modkit insmod hello.o` and `modkit rmmod hello`, so it
# includes starting the two client processes, the socket requests, linking, init, exit and
# unmapping. Prints the median, minimum and maximum milliseconds per cycle.
#
#   usage: scripts/bench-daemon.sh [CYCLES]     (default 200)
#
# Builds modkit with `swift build -c release`; set SWIFT_SCRATCH_PATH to build in another
# directory than .build. The daemon, its socket and the compiled module live in a temporary
# directory that is removed at exit.
set -euo pipefail

fail() {
    echo "bench-daemon: error: $*" >&2
    exit 1
}

cycles="${1:-200}"
[[ "$cycles" =~ ^[1-9][0-9]*$ ]] || fail "invalid cycle count '$cycles'; expected a positive integer"

repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v cc >/dev/null || fail "cc not found; install gcc or clang"
command -v swift >/dev/null || fail "swift not found; add the Swift toolchain's bin directory to PATH"

work="$(mktemp -d "${TMPDIR:-/tmp}/modkit-bench-daemon.XXXXXX")"
host_pid=""
cleanup() {
    if [[ -n "$host_pid" ]] && kill -0 "$host_pid" 2>/dev/null; then
        kill -TERM "$host_pid"
        wait "$host_pid" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "building modkit (swift build -c release)" >&2
swift_flags=(-c release --package-path "$repository")
if [[ -n "${SWIFT_SCRATCH_PATH:-}" ]]; then
    swift_flags+=(--scratch-path "$SWIFT_SCRATCH_PATH")
fi
swift build "${swift_flags[@]}" --product modkit >&2 || fail "swift build -c release failed"
modkit="$(swift build "${swift_flags[@]}" --show-bin-path)/modkit"

# shellcheck disable=SC2046 # modkit cflags prints several words on purpose.
cc -O2 $("$modkit" cflags) -c "$repository/examples/hello.c" -o "$work/hello.o"

export MODKIT_SOCKET="$work/modkit.sock"
"$modkit" host --socket "$MODKIT_SOCKET" 2>"$work/host.log" &
host_pid=$!
for _ in $(seq 100); do
    "$modkit" status >/dev/null 2>&1 && break
    kill -0 "$host_pid" 2>/dev/null || { cat "$work/host.log" >&2; fail "modkit host exited during startup"; }
    sleep 0.05
done
"$modkit" status >/dev/null || fail "modkit host does not answer at $MODKIT_SOCKET"

echo "running $cycles insmod + rmmod cycles" >&2
samples="$work/samples"
for _ in $(seq "$cycles"); do
    start=$(date +%s%N)
    "$modkit" insmod "$work/hello.o"
    "$modkit" rmmod hello
    end=$(date +%s%N)
    echo $(( (end - start) / 1000 )) >>"$samples"
done

sort -n "$samples" | awk -v cycles="$cycles" '
    { value[NR] = $1 }
    END {
        if (NR % 2 == 1) median = value[(NR + 1) / 2]
        else median = (value[NR / 2] + value[NR / 2 + 1]) / 2
        printf "insmod + rmmod round trip, %d cycles: median %.2f ms (min %.2f ms, max %.2f ms)\n",
            cycles, median / 1000, value[1] / 1000, value[NR] / 1000
    }'
