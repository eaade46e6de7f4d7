#!/usr/bin/env bash
# HTTP/2 request rate of an empty authenticated pull vs a trivial route (/healthz) of the SAME
# release server build, in the same run, with h2load (Debian package nghttp2-client) over TLS
# on loopback. Issue #5 goal: the empty pull at >= 70% of the trivial route's requests/s.
#   swift build -c release --product sync-server && scripts/bench-h2load.sh
# Env: REQUESTS (default 100000), CLIENTS (4), STREAMS (16 concurrent streams per connection).
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${REQUESTS:-100000}
clients=${CLIENTS:-4}
streams=${STREAMS:-16}
bin=.build/release/sync-server
[ -x "$bin" ] || { echo "build first: swift build -c release --product sync-server" >&2; exit 2; }
command -v h2load >/dev/null || { echo "install h2load: apt-get install nghttp2-client" >&2; exit 2; }
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
# The per-device rate limit would answer 429 to a load generator: lift it for the benchmark.
cat > "$dir/bench.json" <<JSON
{ "logLevel": "error", "limits": { "requestsPerSecond": 1000000000, "burst": 1000000000 } }
JSON
"$bin" --config "$dir/bench.json" --data "$dir/data" --port 0 > "$dir/out" 2>/dev/null &
pid=$!
for _ in $(seq 100); do grep -q fingerprint "$dir/out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'https://127.0.0.1:[0-9]*' "$dir/out" | head -1)
port=${url##*:}
code=$("$bin" enroll --config "$dir/bench.json" --data "$dir/data" --port "$port" --tenant bench --user load --role agent --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["code"])')
token=$(curl -s --http2 --cacert "$dir/data/tls/server-cert.pem" -H 'content-type: application/json' \
  -d "{\"code\":\"$code\"}" "$url/v1/enroll" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
# A replica that is caught up sends the epoch and cursor of its last pull; one that never pulled
# sends neither (the bench tenant holds no changes, so both are empty answers).
echo '{"protocolVersion":1,"cursor":0,"maxChanges":100,"maxBytes":1000000}' > "$dir/fresh.json"
first=$(curl -s --http2 --cacert "$dir/data/tls/server-cert.pem" -H 'content-type: application/json' \
  -H "authorization: Bearer $token" -d @"$dir/fresh.json" "$url/v1/sync/pull")
epoch=$(echo "$first" | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])')
cursor=$(echo "$first" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nextCursor"])')
echo "{\"protocolVersion\":1,\"epoch\":\"$epoch\",\"cursor\":$cursor,\"maxChanges\":100,\"maxBytes\":1000000}" > "$dir/pull.json"
echo "# h2load: $requests requests, $clients connections x $streams streams, TLS on loopback; $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
run() {
  h2load -n "$requests" -c "$clients" -m "$streams" "$@" > "$dir/last" 2>&1
  grep -E '^(finished in|requests:|status codes:)' "$dir/last" | sed 's/^/  /' >&2
  grep -o 'finished in [0-9.]*s, [0-9.]* req/s' "$dir/last" | awk '{print $4}'
}
echo "trivial route GET /healthz:"
healthz=$(run "$url/healthz" | tail -1)
echo "empty pull POST /v1/sync/pull of a caught-up replica (authenticated, JSON, its epoch and cursor):"
pull=$(run -d "$dir/pull.json" -H "authorization: Bearer $token" -H 'content-type: application/json' "$url/v1/sync/pull" | tail -1)
echo "empty pull POST /v1/sync/pull of a replica that never pulled (no epoch, cursor 0):"
freshpull=$(run -d "$dir/fresh.json" -H "authorization: Bearer $token" -H 'content-type: application/json' "$url/v1/sync/pull" | tail -1)
if [ -n "${PERF_PULL:-}" ]; then  # profile the server while it answers empty pulls
  perf record -g -p "$pid" -o "$PERF_PULL" -- sleep 4 >/dev/null 2>&1 &
  run -d "$dir/pull.json" -H "authorization: Bearer $token" -H 'content-type: application/json' "$url/v1/sync/pull" >/dev/null
  wait
fi
echo "healthz $healthz req/s; empty pull (caught up) $pull req/s, ratio $(python3 -c "print(f'{$pull/$healthz:.2f}')"); (never pulled) $freshpull req/s, ratio $(python3 -c "print(f'{$freshpull/$healthz:.2f}')")"
