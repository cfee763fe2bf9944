#!/usr/bin/env bash
# Fuzzes the object loader: builds the libFuzzer target Sources/ModKitFuzz with
# -sanitize=fuzzer,address, seeds it with real objects and runs it. Each input is linked as one
# object at fixed addresses, as `modkit link` does (validate, lay out, resolve, relocate; nothing
# is mapped and nothing runs). docs/fuzzing.md explains the run and how to replay a crash.
#
#   usage: scripts/fuzz.sh [SECONDS] [SEED_DIR...]
#
# SECONDS (default 60) is the fuzzing time, not counting the build and the seeds. SEED_DIRs are
# read as extra seeds and never written. The last line of the output is always
# `N executions, M crashes`; the exit status is 1 when M > 0 and 2 when the build or the run
# itself failed.
#
# Environment:
#   MODKIT_LUA_CORPUS      the Lua sources to compile into seeds (default ../shared/corpus/lua-5.4
#                          beside the repository); without them only the small fixtures seed the run
#   MODKIT_FUZZ_CRASH_DIR  where crash inputs go (default .build/fuzz-crashes)
#   MODKIT_FUZZ_CORPUS     the corpus libFuzzer grows and keeps between runs (default .build/fuzz-corpus)
#   MODKIT_FUZZ_MAX_LEN    the largest input in bytes (default 32768); larger seeds are left out
#   MODKIT_FUZZ_JOBS       parallel fuzzing processes (default 1; the machine has 2 cores)
#   MODKIT_FUZZ_ARGS       extra libFuzzer options, such as -seed=1 or -use_value_profile=1
set -uo pipefail

repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repository"
if [[ -d /opt/swift/usr/bin ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

seconds="${1:-60}"
if [[ $# -gt 0 ]]; then shift; fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || (( seconds == 0 )); then
    echo "usage: scripts/fuzz.sh [SECONDS] [SEED_DIR...]" >&2
    exit 2
fi
extra_seeds=()
for directory in "$@"; do
    if [[ ! -d "$directory" ]]; then
        echo "fuzz: seed directory '$directory' does not exist" >&2
        exit 2
    fi
    extra_seeds+=("$(cd "$directory" && pwd)")
done

lua="${MODKIT_LUA_CORPUS:-$repository/../shared/corpus/lua-5.4}"
crashes="${MODKIT_FUZZ_CRASH_DIR:-$repository/.build/fuzz-crashes}"
corpus="${MODKIT_FUZZ_CORPUS:-$repository/.build/fuzz-corpus}"
max_len="${MODKIT_FUZZ_MAX_LEN:-32768}"
jobs="${MODKIT_FUZZ_JOBS:-1}"
scratch="$repository/.build/fuzz"
seeds="$repository/.build/fuzz-seeds"
logs="$repository/.build/fuzz-logs"
mkdir -p "$crashes" "$corpus" "$seeds" "$logs"

# MARK: Build

# Swift 6.3 keeps only the last of several -sanitize= options, and SwiftPM passes
# `--sanitize=fuzzer --sanitize=address` as two, in no fixed order: the ModKit module would get
# either coverage or AddressSanitizer, never both. SwiftPM still needs to be told of both (for
# the C targets, and so that it leaves `main` to libFuzzer), and every Swift compile and the link
# also get both in one option, which comes last and so wins. The check after the build makes
# sure that both took.
build_log="$logs/build.log"
echo "fuzz: building the fuzz target in ${scratch#"$repository"/} (log: ${build_log#"$repository"/})"
if ! swift build -c release --scratch-path "$scratch" --sanitize=fuzzer --sanitize=address --product ModKitFuzz \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -DMODKIT_LIBFUZZER > "$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    if grep -q "clang_rt.fuzzer" "$build_log"; then
        echo "fuzz: the toolchain has no libFuzzer runtime (libclang_rt.fuzzer); use a Swift toolchain that ships it" >&2
    fi
    echo "fuzz: the build failed" >&2
    exit 2
fi
parser_object="$scratch/release/ModKit.build/ObjectParser.swift.o"
sections="$(objdump -h "$parser_object" 2>&1)" symbols="$(nm "$parser_object" 2>&1)"
if [[ "$sections" != *__sancov_cntrs* || "$symbols" != *__asan_report* ]]; then
    echo "fuzz: $parser_object lacks coverage counters or AddressSanitizer checks; the build flags did not take" >&2
    exit 2
fi
fuzzer="$scratch/release/ModKitFuzz"

# MARK: Seeds

# Each seed set is compiled once into .build/fuzz-seeds/NAME and kept while its command stays
# the same. Lua is compiled file by file, so that inputs stay small and executions fast.
compile_set() {  # NAME COMPILER FLAGS... -- SOURCES...
    local name="$1" compiler="$2"
    shift 2
    local flags=()
    while [[ "$1" != "--" ]]; do flags+=("$1"); shift; done
    shift
    local directory="$seeds/$name" stamp
    stamp="$compiler ${flags[*]} $(cat "$@" | md5sum)"
    if [[ -f "$directory/.command" && "$(cat "$directory/.command")" == "$stamp" ]]; then return 0; fi
    if ! command -v "${compiler%% *}" > /dev/null; then
        echo "fuzz: $compiler not found; no $name seeds" >&2
        return 0
    fi
    rm -rf "$directory"
    mkdir -p "$directory"
    local source object
    for source in "$@"; do
        object="$directory/$(basename "${source%.*}").o"
        # shellcheck disable=SC2086 # the compiler may carry its own options, such as --target
        $compiler "${flags[@]}" -c "$source" -o "$object" 2>> "$logs/seeds.log" || rm -f "$object"
    done
    echo "$stamp" > "$directory/.command"
}

fixtures="$repository/scripts/fuzz-seeds"
module_sources=("$repository/Tests/c/sample_module.c" "$fixtures/tls.c")
compile_set fixtures-x86_64-gcc gcc -O2 -fPIC -I"$repository/Sources/CModKit/include" -- "${module_sources[@]}" "$fixtures/x86_64-relocations.s"
compile_set fixtures-x86_64-clang clang -O0 -fPIC -ffunction-sections -fdata-sections -I"$repository/Sources/CModKit/include" -- "${module_sources[@]}" "$fixtures/x86_64-relocations.s"
compile_set fixtures-cxx g++ -O2 -fPIC -- "$fixtures/inline.cpp"
compile_set fixtures-aarch64-gcc aarch64-linux-gnu-gcc -O2 -fPIC -I"$repository/Sources/CModKit/include" -- "${module_sources[@]}" "$fixtures/aarch64-relocations.s"
compile_set fixtures-aarch64-clang "clang --target=aarch64-linux-gnu --sysroot=/usr/aarch64-linux-gnu" -O0 -fPIC -- "$fixtures/aarch64-relocations.s"

if [[ -f "$lua/lapi.c" ]]; then
    lua_sources=()
    for source in "$lua"/l*.c; do
        [[ "$(basename "$source")" == "lua.c" ]] || lua_sources+=("$source")
    done
    echo "fuzz: compiling seeds from ${#lua_sources[@]} Lua sources in $lua (cached in ${seeds#"$repository"/})"
    lua_flags=(-fPIC -DLUA_USE_LINUX -w)
    sections=(-ffunction-sections -fdata-sections)
    compile_set lua-gcc-O0 gcc -O0 "${lua_flags[@]}" -- "${lua_sources[@]}"
    compile_set lua-gcc-O2-sections gcc -O2 "${sections[@]}" "${lua_flags[@]}" -- "${lua_sources[@]}"
    compile_set lua-clang-O0-sections clang -O0 "${sections[@]}" "${lua_flags[@]}" -- "${lua_sources[@]}"
    compile_set lua-clang-O2 clang -O2 "${lua_flags[@]}" -- "${lua_sources[@]}"
    compile_set lua-aarch64-gcc-O2-sections aarch64-linux-gnu-gcc -O2 "${sections[@]}" "${lua_flags[@]}" -- "${lua_sources[@]}"
else
    echo "fuzz: Lua corpus not found at $lua (set MODKIT_LUA_CORPUS); seeding with the fixtures only" >&2
fi

# libFuzzer cuts inputs longer than -max_len, which would cut the section table off the end of an
# object, so only the seeds that fit are given to it.
selected="$seeds/selected"
rm -rf "$selected"
mkdir -p "$selected"
seed_count=0 skipped=0
while IFS= read -r -d '' object; do
    if (( $(stat -c %s "$object") > max_len )); then
        skipped=$((skipped + 1))
        continue
    fi
    relative="${object#"$seeds"/}"
    ln "$object" "$selected/${relative//\//_}" 2> /dev/null || cp "$object" "$selected/${relative//\//_}"
    seed_count=$((seed_count + 1))
done < <(find "$seeds" -path "$selected" -prune -o -name '*.o' -type f -print0)
echo "fuzz: $seed_count seed objects of at most $max_len bytes ($skipped larger ones left out)"

# MARK: Run

run_log="$logs/run-$(date +%Y%m%d-%H%M%S).log"
before="$(ls -A "$crashes" | sort)"
options=(-max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1 -timeout=25
         -rss_limit_mb=4096 -artifact_prefix="$crashes/")
if (( jobs > 1 )); then
    options+=(-jobs="$jobs" -workers="$jobs")
fi
# shellcheck disable=SC2206 # MODKIT_FUZZ_ARGS is a list of options
options+=(${MODKIT_FUZZ_ARGS:-})
echo "fuzz: running for ${seconds}s: ${fuzzer#"$repository"/} ${options[*]} ${corpus#"$repository"/} ..."
echo "fuzz: corpus ${corpus#"$repository"/}, crash inputs go to $crashes, log ${run_log#"$repository"/}"

# A Swift trap must reach libFuzzer as a plain SIGILL, without the runtime's own backtracer,
# which is slow and reads memory in ways that AddressSanitizer reports.
export SWIFT_BACKTRACE="enable=no"
start=$(date +%s)
cd "$logs"
"$fuzzer" "${options[@]}" "$corpus" "$selected" ${extra_seeds[@]+"${extra_seeds[@]}"} > "$run_log" 2>&1
status=$?
elapsed=$(( $(date +%s) - start ))
if (( jobs > 1 )); then
    # With -jobs, each job writes fuzz-N.log in the working directory.
    for job_log in "$logs"/fuzz-[0-9]*.log; do
        [[ -f "$job_log" ]] || continue
        cat "$job_log" >> "$run_log"
        rm -f "$job_log"
    done
fi

executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$run_log" | awk '{sum += $2} END {print sum + 0}')
if (( executions == 0 )); then
    # Without final statistics, the last status line counts the executions.
    executions=$(grep -aoE '^#[0-9]+' "$run_log" | tr -d '#' | sort -n | tail -n 1)
    executions=${executions:-0}
fi
# Crashes, out-of-memory, timeouts and leaks count; slow-unit files are only reported.
new_artifacts=() slow_units=()
while IFS= read -r name; do
    case "$name" in
        crash-* | oom-* | timeout-* | leak-*) new_artifacts+=("$crashes/$name") ;;
        ?*) slow_units+=("$crashes/$name") ;;
    esac
done < <(comm -13 <(echo "$before") <(ls -A "$crashes" | sort))
found=${#new_artifacts[@]}

grep -E '^#[0-9]+[[:space:]]+DONE|^Done [0-9]+ runs' "$run_log" | tail -n 2
corpus_files=$(find "$corpus" -type f | wc -l)
rate=$(( elapsed > 0 ? executions / elapsed : executions ))
echo "fuzz: ${elapsed}s, $rate exec/s, corpus ${corpus_files} files, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for artifact in ${slow_units[@]+"${slow_units[@]}"}; do
    echo "fuzz: slow input (not counted as a crash) $artifact"
done
if (( found > 0 )); then
    awk '/ERROR:|Fatal error/ { show = 1 } show { print } /^SUMMARY/ { if (show) exit }' "$run_log" | head -n 60
    for artifact in "${new_artifacts[@]}"; do
        echo "fuzz: crash input $artifact; replay: SWIFT_BACKTRACE=enable=no $fuzzer $artifact"
    done
elif (( status != 0 )); then
    tail -n 30 "$run_log" >&2
    echo "fuzz: libFuzzer exited with status $status without a crash input" >&2
fi
echo "$executions executions, $found crashes"
if (( found > 0 )); then exit 1; fi
if (( status != 0 )); then exit 2; fi
exit 0
