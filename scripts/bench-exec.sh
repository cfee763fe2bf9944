#!/usr/bin/env bash
# Compares `modkit exec --repeat N` with a dlopen/dlsym/dlclose loop on the Lua 5.4
# interpreter (onelua.c): each cycle loads the interpreter, runs main with `-e ""` and unloads
# it. Prints the median microseconds per cycle of both and the ratio modkit/dlopen.
#
#   usage: scripts/bench-exec.sh [CYCLES]     (default 2000)
#
# Needs cc and the Lua corpus at ../shared/corpus/lua-5.4 beside the repository, or at
# $MODKIT_LUA_CORPUS. Builds modkit with `swift build -c release`; set SWIFT_SCRATCH_PATH to
# build in another directory than .build. Compiled objects go to a temporary directory that is
# removed at exit.
set -euo pipefail

fail() {
    echo "bench-exec: error: $*" >&2
    exit 1
}

cycles="${1:-2000}"
[[ "$cycles" =~ ^[1-9][0-9]*$ ]] || fail "invalid cycle count '$cycles'; expected a positive integer"

repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
corpus="${MODKIT_LUA_CORPUS:-$repository/../shared/corpus/lua-5.4}"
lua_flags=(-O2 -fPIC -DMAKE_LUA -DLUA_USE_LINUX)
lua_arguments=(-e "")

command -v cc >/dev/null || fail "cc not found; install gcc or clang"
command -v swift >/dev/null || fail "swift not found; add the Swift toolchain's bin directory to PATH"
[[ -f "$corpus/onelua.c" ]] || fail "$corpus/onelua.c not found; clone the repository with ../shared beside it or set MODKIT_LUA_CORPUS"

work="$(mktemp -d "${TMPDIR:-/tmp}/modkit-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "compiling onelua.c as an object and as a shared library (cc ${lua_flags[*]})" >&2
cc "${lua_flags[@]}" -c "$corpus/onelua.c" -o "$work/onelua.o"
cc "${lua_flags[@]}" -shared "$corpus/onelua.c" -o "$work/onelua.so" -lm -ldl
cc -O2 -Wall -Wextra "$repository/bench/dlopen_cycle.c" -o "$work/dlopen_cycle" -ldl

echo "building modkit (swift build -c release)" >&2
swift_flags=(-c release --package-path "$repository")
if [[ -n "${SWIFT_SCRATCH_PATH:-}" ]]; then
    swift_flags+=(--scratch-path "$SWIFT_SCRATCH_PATH")
fi
swift build "${swift_flags[@]}" --product modkit >&2 || fail "swift build -c release failed"
modkit="$(swift build "${swift_flags[@]}" --show-bin-path)/modkit"

# Runs a benchmark command, whose program output is discarded, and prints the number from its
# last line on standard error, "NNN.N us per cycle".
median_microseconds() {
    local log="$work/stderr.log"
    if ! "$@" 2>"$log" >/dev/null; then
        cat "$log" >&2
        fail "'$*' failed"
    fi
    local last
    last="$(tail -n 1 "$log")"
    [[ "$last" =~ ^([0-9]+\.[0-9]+)\ us\ per\ cycle$ ]] || { cat "$log" >&2; fail "no 'us per cycle' line from '$1'"; }
    echo "${BASH_REMATCH[1]}"
}

echo "running $cycles cycles of each" >&2
modkit_us="$(median_microseconds "$modkit" exec --repeat "$cycles" --stats "$work/onelua.o" -- "${lua_arguments[@]}")"
dlopen_us="$(median_microseconds "$work/dlopen_cycle" -n "$cycles" "$work/onelua.so" "${lua_arguments[@]}")"

awk -v cycles="$cycles" -v modkit="$modkit_us" -v dlopen="$dlopen_us" 'BEGIN {
    printf "Lua 5.4 onelua.c, main with -e \"\", median of %d cycles (load, main, unload)\n", cycles
    printf "  %-28s %10.1f us\n", "modkit exec --repeat", modkit
    printf "  %-28s %10.1f us\n", "dlopen, dlsym, dlclose", dlopen
    printf "  %-28s %10.2f (target: at most 0.6)\n", "ratio modkit/dlopen", modkit / dlopen
}'
