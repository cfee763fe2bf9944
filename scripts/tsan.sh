#!/usr/bin/env bash
# Runs the sanitizer test groups of scripts/sanitize.sh under ThreadSanitizer.
exec "$(dirname "${BASH_SOURCE[0]}")/sanitize.sh" thread
