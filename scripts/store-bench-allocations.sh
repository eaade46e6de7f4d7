#!/usr/bin/env bash
# Allocations (glibc malloc calls) during the title apply of store-bench: the one exact figure on
# this machine, which has no hardware counters (session 18: 2,675,994 -> 2,473,074 per 100,000
# title changes). A uprobe on malloc traps on every call of the whole run, so one run takes
# 3-8 minutes instead of ~35 s; only the title phase is counted.
#   scripts/store-bench-allocations.sh Benchmarks/.build/release/store-bench
# Needs `perf` with uprobes and root (the probe is added once: perf probe -x LIBC --add malloc).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: $0 BINARY" >&2; exit 2; }
libc=$(ldconfig -p | grep -m1 -oE '/[^ ]*/libc\.so\.6$')
perf probe -l 2>/dev/null | grep -q 'probe_libc:malloc' || perf probe -q -x "$libc" --add malloc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkfifo "$work/fifo"
STORE_BENCH_ONLY=sync STORE_BENCH_PERF_CTL=$work/fifo STORE_BENCH_PERF_PHASE=titles \
    perf stat -x, -e probe_libc:malloc --control "fifo:$work/fifo" -D -1 -o "$work/stat" "$1" > "$work/bench" 2>&1
echo "$(basename "$1") | mallocs $(grep probe_libc:malloc "$work/stat" | cut -d, -f1) |" \
    "$(grep -E '^applying 100000 remote changes of a field' "$work/bench" | grep -oE 'in [0-9]+ transactions')"
