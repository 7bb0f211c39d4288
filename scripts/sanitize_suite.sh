#!/bin/sh
# Run tests with every generated model that is loaded on the host (HostModel, the spiking and
# training host runners) built with -fsanitize=address,undefined -fno-sanitize-recover=all.
# A sanitizer finding aborts the run with its report. Usage:
#   scripts/sanitize_suite.sh [pytest arguments]     (default: the whole tests/ folder)
set -eu
CC=${CC:-gcc}
ASAN=$($CC -print-file-name=libasan.so)
UBSAN=$($CC -print-file-name=libubsan.so)
# separate cache: sanitized builds must not be reused by normal runs (the flags are in the key,
# this only keeps the folders apart)
export EDGEKIT_CACHE="${EDGEKIT_CACHE:-$HOME/.cache/edgekit-sanitize}"
export EDGEKIT_SANITIZE=1
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:verify_asan_link_order=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
[ $# -eq 0 ] && set -- tests
LD_PRELOAD="$ASAN $UBSAN" exec python3 -m pytest -p no:cacheprovider "$@"
