#!/usr/bin/env bash
# Allocations (malloc calls) during the title apply of store-bench: the one exact figure on
# this machine, which has no hardware counters (2,273,358 per 100,000 title changes on tcmalloc;
# docs/performance.md). A uprobe on malloc traps on every call of the whole run, so one run takes
# 3-8 minutes instead of ~35 s; only the title phase is counted.
#   scripts/store-bench-allocations.sh Benchmarks/.build/release/store-bench
# Needs `perf` with uprobes and root (the probe is added once: perf probe -x LIBRARY --add malloc).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: $0 BINARY" >&2; exit 2; }
# The malloc the binary calls: tcmalloc's when it was linked with it (Benchmarks/Package.swift),
# else glibc's. (tcmalloc's `malloc` is an alias of `tc_malloc`; perf refuses a
# second event named `malloc`, so the probe is named after tc_malloc.)
if readelf -d "$1" | grep -q 'libtcmalloc_minimal'; then
    library=$(ldconfig -p | grep -m1 -oE '/[^ ]*/libtcmalloc_minimal\.so\.4$')
    event=probe_tcmalloc:tcmalloc probe="probe_tcmalloc:tcmalloc=tc_malloc"
else
    library=$(ldconfig -p | grep -m1 -oE '/[^ ]*/libc\.so\.6$')
    event=probe_libc:malloc probe=malloc
fi
perf probe -l 2>/dev/null | grep -q "$event" || perf probe -q -x "$library" --add "$probe"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkfifo "$work/fifo"
STORE_BENCH_ONLY=sync STORE_BENCH_PERF_CTL=$work/fifo STORE_BENCH_PERF_PHASE=titles \
    perf stat -x, -e "$event" --control "fifo:$work/fifo" -D -1 -o "$work/stat" "$1" > "$work/bench" 2>&1
echo "$(basename "$1") | mallocs $(grep "$event" "$work/stat" | cut -d, -f1) |" \
    "$(grep -E '^applying 100000 remote changes of a field' "$work/bench" | grep -oE 'in [0-9]+ transactions')"
