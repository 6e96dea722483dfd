#!/usr/bin/env bash
# Soak test: isr-proxy under sustained load while the origin flaps.
#
#   benches/soak.sh [SECONDS=60] [CONNECTIONS=256]
#   PROFILE=debug benches/soak.sh 5 32        # quick smoke run on a debug build
#
# Runs the demo origin (examples/demo_origin.rs) and isr-proxy (release build) on loopback, warms 50 blog posts,
# then for SECONDS runs two wrk loads at once:
#   - "cached":  3/4 of CONNECTIONS on the 50 warmed posts and the index. Revalidate is 2 s, so these are a mix
#                of HITs and STALE hits with background regenerations.
#   - "churn":   1/4 of CONNECTIONS on never-seen posts (misses) and on-demand revalidations (POST).
# Meanwhile the origin is killed for 2 s every 5 s. Pass criteria: zero 5xx on "cached" (pages that were ever
# cached survive the origin's outages), and a flat resident set size. "churn" 5xx are expected while the origin
# is down (a miss has no last good page) and are reported, not judged.
# Needs: wrk (apt install wrk), curl. Ports: ORIGIN_PORT (18080), PROXY_PORT (13000), ADMIN_PORT (13091).
set -euo pipefail

SECONDS_TOTAL=${1:-60}
CONNECTIONS=${2:-256}
PROFILE=${PROFILE:-release}
ORIGIN_PORT=${ORIGIN_PORT:-18080}
PROXY_PORT=${PROXY_PORT:-13000}
ADMIN_PORT=${ADMIN_PORT:-13091}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d)
PIDS=()

command -v wrk >/dev/null || { echo "soak.sh needs wrk (apt install wrk)" >&2; exit 2; }
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -f "$WORK/origin.pid" ]] && kill "$(cat "$WORK/origin.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cd "$ROOT"
if [[ "$PROFILE" == release ]]; then
    cargo build --quiet --release --bin isr-proxy --example demo_origin
    BIN=target/release
else
    cargo build --quiet --bin isr-proxy --example demo_origin
    BIN=target/debug
fi

cat > "$WORK/soak.toml" <<TOML
listen = "127.0.0.1:$PROXY_PORT"

[origin]
url = "http://127.0.0.1:$ORIGIN_PORT"
timeout = "2s"
max_connections = 64
queue_timeout = "1s"

[cache]
retry_after = "1s"

[server]
max_connections = $((CONNECTIONS * 2))

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[[route]]
path = "/"
revalidate = 2

[[route]]
path = "/blog/:slug"
revalidate = 2
expire = "1h"
TOML

start_origin() {
    "$BIN/examples/demo_origin" --listen "127.0.0.1:$ORIGIN_PORT" --delay-ms 20 >/dev/null 2>&1 &
    echo $! > "$WORK/origin.pid"
}
wait_port() {
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1$2" && return 0; sleep 0.1; done
    echo "nothing answers on port $1" >&2; exit 1
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

start_origin
wait_port "$ORIGIN_PORT" /
ISR_REVALIDATE_TOKEN=soak RUST_LOG=warn "$BIN/isr-proxy" --config "$WORK/soak.toml" 2> "$WORK/proxy.log" &
PROXY=$!
PIDS+=("$PROXY")
wait_port "$PROXY_PORT" /
for i in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/blog/post-$i"; done
RSS_START=$(rss_kib "$PROXY")

# The origin flaps: up 5 s, down 2 s.
(
    while true; do
        sleep 5
        kill "$(cat "$WORK/origin.pid")" 2>/dev/null || true
        wait "$(cat "$WORK/origin.pid")" 2>/dev/null || true
        sleep 2
        start_origin
    done
) &
PIDS+=("$!")

CACHED=$((CONNECTIONS * 3 / 4))
CHURN=$((CONNECTIONS - CACHED))
URL="http://127.0.0.1:$PROXY_PORT"
wrk -t1 -c"$CACHED" -d"${SECONDS_TOTAL}s" -s "$HERE/soak/cached.lua" "$URL" > "$WORK/cached.txt" 2>&1 &
WRK1=$!
wrk -t1 -c"$CHURN" -d"${SECONDS_TOTAL}s" -s "$HERE/soak/churn.lua" "$URL" > "$WORK/churn.txt" 2>&1 &
WRK2=$!
RSS_MAX=$RSS_START
while kill -0 "$WRK1" 2>/dev/null || kill -0 "$WRK2" 2>/dev/null; do
    RSS_NOW=$(rss_kib "$PROXY")
    (( RSS_NOW > RSS_MAX )) && RSS_MAX=$RSS_NOW
    sleep 1
done
wait "$WRK1" "$WRK2" || true
RSS_END=$(rss_kib "$PROXY")

echo "== cached pages ($CACHED connections: hits and stale hits, origin flapping)"
cat "$WORK/cached.txt"
echo "== churn ($CHURN connections: misses and revalidations)"
cat "$WORK/churn.txt"
echo "== proxy /metrics (requests by cache status, origin fetches)"
curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -E '^isr_(requests|origin_fetches|revalidations)_total|^isr_cache_(entries|bytes) ' || true
echo "== resident memory: start ${RSS_START} KiB, peak ${RSS_MAX} KiB, end ${RSS_END} KiB"
CACHED_5XX=$(awk '/^5xx:/ {print $2}' "$WORK/cached.txt")
echo "== 5xx on cached pages: ${CACHED_5XX:-unknown}"
[[ "${CACHED_5XX:-1}" == 0 ]]
