#!/usr/bin/env bash
# Runs the sanitizer test groups of scripts/sanitize.sh under AddressSanitizer.
exec "$(dirname "${BASH_SOURCE[0]}")/sanitize.sh" address
