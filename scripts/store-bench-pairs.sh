#!/usr/bin/env bash
# Interleaved runs of two store-bench binaries, one summary line per run: how to compare a change
# with the commit before it on this shared, noisy machine (each run carries the raw SQLite floors
# it measured itself, so compare ratios and pairs, never one run).
#   cp Benchmarks/.build/release/store-bench /tmp/sb-before   # build each commit in turn:
#   (cd Benchmarks && swift build -c release --product store-bench)
#   scripts/store-bench-pairs.sh 3 /tmp/sb-before /tmp/sb-after
# Each run is the sync section (`STORE_BENCH_ONLY=sync`, ~35 s); the CPU is that of the title
# apply alone (perf stat, started and stopped by the benchmark through a fifo). Needs `perf`
# (apt-get install linux-perf). Nothing else may run meanwhile (check `pgrep -fa xctest`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 3 ] || { echo "usage: $0 PAIRS BINARY_A BINARY_B" >&2; exit 2; }
command -v perf >/dev/null || { echo "install perf: apt-get install linux-perf" >&2; exit 2; }
pairs=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {
    local bin=$1 out=$work/bench stat=$work/stat
    rm -f "$work/fifo" && mkfifo "$work/fifo"
    STORE_BENCH_ONLY=sync STORE_BENCH_PERF_CTL=$work/fifo STORE_BENCH_PERF_PHASE=titles \
        perf stat -x, -e task-clock --control "fifo:$work/fifo" -D -1 -o "$stat" "$bin" > "$out" 2>&1
    local cpu titles floor renames import
    cpu=$(grep task-clock "$stat" | cut -d, -f1)
    titles=$(grep -E "^applying 100000 remote changes of a field" "$out" \
        | grep -oE "in [0-9]+ transactions|[0-9]+ changes/s" | tr '\n' ' ')
    floor=$(grep -A1 -E "^applying 100000 remote changes of a field" "$out" | tail -1 \
        | grep -oE "[0-9]+ changes/s; store ratio to it [0-9.]+" || true)
    renames=$(grep -E "^applying 100000 remote field" "$out" | grep -oE "[0-9]+ changes/s" | head -1 || true)
    import=$(grep -E "^bulk import" "$out" | grep -oE "store [0-9.]+ s" || true)
    echo "$(basename "$bin") | titles ${titles}(cpu ${cpu%.*} ms) floor $floor | renames $renames | import $import"
}
for _ in $(seq 1 "$pairs"); do run "$2"; run "$3"; done
