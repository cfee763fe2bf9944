#!/usr/bin/env bash
# Links each OBJECT with ModKit (modkit link) and with ld.lld at the same fixed addresses and
# compares the bytes of every relocated field; scripts/oracle.py does the work and describes it.
#
# Usage: scripts/oracle.sh [--module] [--map MAP] [--show N] OBJECT...
#
# Links each OBJECT on its own, or with --module all of them as one module. Prints one line per
# link, "OBJECT: N relocations compared, M differ; .eh_frame: ...", followed by the first N
# differences (default 10), and exits with 1 if any link differs or fails. --map starts from a
# map whose addresses modkit link takes (docs/link-map.md), such as symbols at range boundaries.
#
# Environment:
#   MODKIT  the modkit executable (default: .build/debug/modkit, then .build/release/modkit,
#           then modkit on PATH)
#   LLD     the ld.lld executable (default: ld.lld beside the Swift toolchain in /opt/swift,
#           then ld.lld on PATH)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

modkit="${MODKIT:-}"
if [[ -z "$modkit" ]]; then
    for candidate in "$root/.build/debug/modkit" "$root/.build/release/modkit" "$(command -v modkit || true)"; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then modkit="$candidate"; break; fi
    done
fi
if [[ -z "$modkit" ]]; then
    echo "oracle.sh: error: modkit not found; run 'swift build' or set MODKIT to the executable" >&2
    exit 2
fi

lld="${LLD:-}"
if [[ -z "$lld" ]]; then
    for candidate in /opt/swift/usr/bin/ld.lld "$(command -v ld.lld || true)"; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then lld="$candidate"; break; fi
    done
fi
if [[ -z "$lld" ]]; then
    echo "oracle.sh: error: ld.lld not found; install the Swift toolchain or set LLD to the executable" >&2
    exit 2
fi

exec python3 "$here/oracle.py" --modkit "$modkit" --lld "$lld" "$@"
