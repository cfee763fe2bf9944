#!/bin/sh
# Regenerates the host API's symbol version tables from the headers in
# Sources/CModKit/include/modkit: the Swift table the loader checks against and the
# Module.symvers file for modules built outside modkit build. Run it after changing a
# function or type that modules reach through those headers.
set -eu
cd "$(dirname "$0")/.."
swift build --product modkit
modkit=$(swift build --show-bin-path)/modkit
"$modkit" build --host-symvers --swift -o Sources/ModKit/HostAPI/HostSymbolVersions.swift
"$modkit" build --host-symvers -o Sources/CModKit/include/modkit/Module.symvers
echo "updated Sources/ModKit/HostAPI/HostSymbolVersions.swift and Sources/CModKit/include/modkit/Module.symvers; rebuild modkit"
