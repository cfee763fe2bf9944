#!/bin/sh
# Regenerates the host API's symbol version tables from the headers in
# Sources/CModKit/include/modkit: the Swift table that the loader checks against and the
# Module.symvers file for modules built by other means. Run it after changing a function or
# type that modules reach through those headers, then rebuild modkit.
#
# MODKIT=PATH uses an already built modkit instead of running swift build.
set -eu
cd "$(dirname "$0")/.."
if [ -z "${MODKIT:-}" ]; then
    swift build --product modkit
    MODKIT=$(swift build --show-bin-path)/modkit
fi
"$MODKIT" build --host-symvers --swift -o Sources/ModKit/HostAPI/HostSymbolVersions.swift
"$MODKIT" build --host-symvers -o Sources/CModKit/include/modkit/Module.symvers
echo "updated Sources/ModKit/HostAPI/HostSymbolVersions.swift and Sources/CModKit/include/modkit/Module.symvers"
