#!/usr/bin/env bash
# Builds and runs the C tests of the CModKit target:
#   - modkit/module.h compiled as C11, gnu11 and C++17 with gcc and clang
#     (-Wall -Wextra -Werror), and the sections of the resulting objects;
#   - the host API tests;
#   - the reference counting tests in every mode, with gcc and clang, and
#     under ThreadSanitizer and AddressSanitizer with UBSan.
# Needs gcc, g++, clang, clang++ and readelf. Usage: Tests/c/run.sh
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
sources=$root/Sources/CModKit
include=$sources/include
tests=$root/Tests/c
build=$(mktemp -d "${TMPDIR:-/tmp}/cmodkit-tests.XXXXXX")
trap 'rm -rf "$build"' EXIT

warnings=(-Wall -Wextra -Werror)
passed=0
failed=0

record() {
    local name=$1 status=$2
    if [ "$status" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        sed 's/^/    /' "$build/step.log"
    fi
}

# Runs a command as one step; its output is shown only if it fails.
step() {
    local name=$1
    shift
    "$@" > "$build/step.log" 2>&1
    record "$name" $?
}

# Runs a test program as one step and always shows its summary line.
run_program() {
    local name=$1
    shift
    # A hung test program fails its step instead of stalling the whole run.
    timeout --kill-after=10 300 "$@" > "$build/step.log" 2>&1
    local status=$?
    [ "$status" -eq 124 ] && echo "timed out after 300 seconds" >> "$build/step.log"
    grep -E '^[a-z_]+: [0-9]+ passed' "$build/step.log" | sed "s/^/    $name /"
    record "$name" $status
}

section_size() {
    local object=$1 section=$2
    local hex
    hex=$(readelf -SW "$object" | sed -n 's/^ *\[ *[0-9]*\] *//p' | awk -v name="$section" '$1 == name { print $5 }')
    [ -n "$hex" ] && echo $((16#$hex))
}

# Checks what the loader relies on in an object built from sample_module.c.
check_module_sections() {
    local object=$1 debug=$2
    local modinfo kstrtab relocations entry name section
    modinfo=$(readelf -p .modinfo "$object")
    for entry in 'license=GPL' 'author=ModKit tests' 'description=Uses every macro of modkit/module.h' \
        'version=1.2' 'alias=sample-alias' 'name=sample' 'import_ns=SAMPLE_IMPORTED'; do
        grep -qF "$entry" <<< "$modinfo" || { echo ".modinfo lacks '$entry'"; return 1; }
    done

    [ "$(section_size "$object" .modkit.init)" = 8 ] || { echo ".modkit.init is not one pointer"; return 1; }
    [ "$(section_size "$object" .modkit.exit)" = 8 ] || { echo ".modkit.exit is not one pointer"; return 1; }
    # Five exports of 32 bytes each.
    [ "$(section_size "$object" .modkit.ksymtab)" = 160 ] || { echo ".modkit.ksymtab is not 5 entries"; return 1; }

    kstrtab=$(readelf -p .modkit.kstrtab "$object")
    for name in sample_exported_variable sample_exported_function sample_gpl_function \
        sample_ns_function sample_ns_gpl_function SAMPLE_NS; do
        grep -qw "$name" <<< "$kstrtab" || { echo ".modkit.kstrtab lacks $name"; return 1; }
    done

    # Five addresses, five names and two namespaces, filled in by relocation
    # rather than by a C++ static initializer.
    relocations=$(readelf -rW "$object" | sed -n "/'.rela.modkit.ksymtab'/,/^$/p" | grep -c R_X86_64_64)
    [ "$relocations" = 12 ] || { echo ".modkit.ksymtab has $relocations relocations, expected 12"; return 1; }
    if [ -n "$(section_size "$object" .init_array)" ]; then
        echo "the object has .init_array: some metadata needs a constructor"
        return 1
    fi

    for section in .init.text .exit.text .init.data .init.rodata; do
        [ -n "$(section_size "$object" "$section")" ] || { echo "$section is missing"; return 1; }
    done

    # __this_module is hidden, so it is reached PC-relative and never via the GOT.
    if readelf -rW "$object" | grep __this_module | grep -q GOTPC; then
        echo "__this_module is accessed through the GOT"
        return 1
    fi

    if [ "$debug" = no ] && strings "$object" | grep -q 'not printed'; then
        echo "pr_debug left its message in the object without DEBUG"
        return 1
    fi
    if [ "$debug" = yes ] && ! strings "$object" | grep -q 'not printed'; then
        echo "pr_debug with DEBUG lost its message"
        return 1
    fi
}

compile_and_check_module() {
    local compiler=$1 language=$2 standard=$3 optimization=$4 debug=$5
    local object=$build/module-$compiler-$standard-$optimization-$debug.o
    local defines=()
    [ "$debug" = yes ] && defines=(-DDEBUG)
    "$compiler" -x "$language" -std="$standard" "$optimization" "${warnings[@]}" -fPIC "${defines[@]}" \
        -I"$include" -c "$tests/sample_module.c" -o "$object" || return 1
    check_module_sections "$object" "$debug"
}

echo "== module.h"
for pair in "gcc g++" "clang clang++"; do
    read -r c_compiler cxx_compiler <<< "$pair"
    for optimization in -O0 -O2; do
        for debug in no yes; do
            for standard in c11 gnu11; do
                step "module.h $c_compiler -std=$standard $optimization DEBUG=$debug" \
                    compile_and_check_module "$c_compiler" c "$standard" "$optimization" "$debug"
            done
            step "module.h $cxx_compiler -std=c++17 $optimization DEBUG=$debug" \
                compile_and_check_module "$cxx_compiler" c++ c++17 "$optimization" "$debug"
        done
    done
done

# Builds one test program: build_program OUTPUT C_COMPILER CXX_COMPILER FLAGS... -- SOURCES...
build_program() {
    local output=$1 c_compiler=$2 cxx_compiler=$3
    shift 3
    local flags=()
    while [ "$1" != -- ]; do
        flags+=("$1")
        shift
    done
    shift
    "$cxx_compiler" -std=c++17 "${flags[@]}" "${warnings[@]}" -I"$include" \
        -c "$tests/cxx_refcount_probe.cpp" -o "$output-cxx.o" &&
        "$c_compiler" -std=gnu11 "${flags[@]}" "${warnings[@]}" -I"$include" -I"$sources" \
            "$@" "$output-cxx.o" "$sources"/*.c -o "$output" -lpthread -lstdc++
}

echo "== host API"
for pair in "gcc g++" "clang clang++"; do
    read -r c_compiler cxx_compiler <<< "$pair"
    program=$build/host_api_test-$c_compiler
    step "build host_api_test with $c_compiler" \
        build_program "$program" "$c_compiler" "$cxx_compiler" -O2 -g -- "$tests/host_api_test.c"
    [ -x "$program" ] && run_program "host_api_test ($c_compiler)" "$program"
done

echo "== reference counts"
for pair in "gcc g++" "clang clang++"; do
    read -r c_compiler cxx_compiler <<< "$pair"
    program=$build/refcount_test-$c_compiler
    step "build refcount_test with $c_compiler" \
        build_program "$program" "$c_compiler" "$cxx_compiler" -O2 -g -- "$tests/refcount_test.c"
    if [ -x "$program" ]; then
        for mode in membarrier fence no-unload; do
            run_program "refcount_test $mode ($c_compiler)" "$program" "$mode"
        done
    fi
done

echo "== sanitizers"
# ThreadSanitizer understands neither membarrier nor the fences, so its
# builds count with seq_cst atomics and run in fence mode.
program=$build/refcount_test-tsan
step "build refcount_test with -fsanitize=thread" \
    build_program "$program" gcc g++ -O1 -g -fsanitize=thread -- "$tests/refcount_test.c"
[ -x "$program" ] && run_program "refcount_test fence (tsan)" \
    env TSAN_OPTIONS="halt_on_error=1 die_after_fork=0" "$program" fence

program=$build/refcount_test-asan
step "build refcount_test with -fsanitize=address,undefined" \
    build_program "$program" gcc g++ -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -- \
    "$tests/refcount_test.c"
[ -x "$program" ] && run_program "refcount_test membarrier (asan+ubsan)" "$program" membarrier

program=$build/host_api_test-asan
step "build host_api_test with -fsanitize=address,undefined" \
    build_program "$program" gcc g++ -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -- \
    "$tests/host_api_test.c"
[ -x "$program" ] && run_program "host_api_test (asan+ubsan)" "$program"

echo "c-tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
