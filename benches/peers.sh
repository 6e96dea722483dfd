#!/usr/bin/env bash
# peers.sh: isr-proxy's cache-HIT throughput next to nginx proxy_cache, Varnish and the bare-hyper limit server,
# in one run on this machine, through the shared peer harness (../shared/bench/compare.sh beside the repo).
#
# It builds isr-proxy in release mode, picks a free origin port, and hands compare.sh a candidate command that
# writes an isr-proxy config fronting that run's origin (route /page/:id, revalidate >= the run's TTL and at
# least 3600 s, so every measured request is a HIT) and execs the release binary. Everything compare.sh prints
# and writes (TSV in /tmp/bench-results.tsv unless --out) is its own; read the /limit column.
#
# usage: benches/peers.sh [compare.sh options]
#   every argument is passed to compare.sh (see compare.sh --help), e.g.
#   benches/peers.sh                                   # 8 KiB pages, 1000 paths, 3 rounds x 5 s
#   benches/peers.sh --size 65536 --rounds 5 --out /tmp/bench-64k.tsv
#   benches/peers.sh --rounds 1 --duration 3 --quiet-wait 20     # smoke run
#   benches/peers.sh --with-disk --no-peers            # isr-proxy with and without [cache] dir, side by side
#   benches/peers.sh --with-redis --no-peers           # + [cache.redis] (L1 hits), and isr-proxy-l2: a 1 MiB
#                                                      #   memory cache, so nearly every hit comes from Redis
#   benches/peers.sh --baseline /tmp/base/isr-proxy    # + isr-proxy-base: another build (e.g. the previous
#                                                      #   commit's) in the same run, for before/after ratios
# env:
#   PEERS_MAX_SECONDS   hard bound on the whole compare.sh run (default 3600); it is stopped (TERM) after that
#   RUST_LOG            isr-proxy's log filter (default warn)
#
# It installs nothing: if wrk, nginx or varnishd is missing it prints the apt-get line and exits.
set -euo pipefail

die() { echo "peers.sh: $*" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=benches/common.sh
source "$here/common.sh"
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null) || die "$here is not inside a git checkout"
bench="$root/../shared/bench"
compare="$bench/compare.sh"
[ -f "$compare" ] || die "peer harness not found at $compare (the shared/ directory must sit beside the repo root)"
bench=$(cd "$bench" && pwd)
compare="$bench/compare.sh"

max_seconds=${PEERS_MAX_SECONDS:-3600}
[[ $max_seconds =~ ^[0-9]+$ ]] || die "PEERS_MAX_SECONDS needs a whole number of seconds, got '$max_seconds'"

no_peers=0 origin_given=0 with_disk=0 with_redis=0 baseline="" want_baseline=0
args=()
for arg in "$@"; do
  if [ $want_baseline = 1 ]; then
    baseline=$arg want_baseline=0
    continue
  fi
  case "$arg" in
    --baseline) want_baseline=1; continue ;;
    --with-disk) with_disk=1; continue ;;
    --with-redis) with_redis=1; continue ;;
    --no-peers) no_peers=1 ;;
    --origin-port) origin_given=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
  esac
  args+=("$arg")
done
need=(wrk python3 cargo timeout)
[ $no_peers = 1 ] || need+=(nginx varnishd)
missing=()
for tool in "${need[@]}"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "peers.sh: not found: ${missing[*]}" >&2
  case " ${missing[*]} " in
    *" wrk "*|*" nginx "*|*" varnishd "*)
      echo "install wrk, nginx and varnishd with: apt-get update && apt-get install -y nginx-light varnish wrk" >&2 ;;
  esac
  exit 1
fi

bin=$(release_binary "$root")
[ $want_baseline = 0 ] || die "--baseline needs the path of an isr-proxy binary"
[ -z "$baseline" ] || [ -x "$baseline" ] || die "--baseline $baseline is not an executable"

work=$(mktemp -d /tmp/isr-peers.XXXXXX)
cmp_pid=""
# compare.sh stops the candidate itself; this only catches a proxy left behind if compare.sh was killed hard.
cleanup_more() {
  local pidfile pid
  for pidfile in "$work"/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "${pidfile%.pid}.toml"; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  if [ -f "$work/redis.pid" ]; then kill -TERM "$(cat "$work/redis.pid")" 2>/dev/null || true; fi
}
cleanup_on_exit

# The candidate command: compare.sh runs it with PORT, ORIGIN_URL and TTL set. It writes the config from them and
# execs the proxy, so compare.sh's PID is the server's and its CPU and memory accounting sees isr-proxy itself.
# Its argument picks a variant: none, `disk` ([cache] dir), `redis` ([cache.redis]) or `l2` (Redis, with a
# 1 MiB memory cache, so nearly every request misses memory and is served from Redis).
cat >"$work/run-isr-proxy.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
name=isr-proxy\${1:+-\$1}
revalidate=\$(( \${TTL:-60} > 3600 ? \${TTL:-60} : 3600 ))
redis="[cache.redis]
url = \"redis://127.0.0.1:\${REDIS_PORT:-6379}\"
key_prefix = \"\$name:\""
case "\${1:-}" in
  disk) extra="[cache]
dir = \"$work/disk\"" ;;
  redis) extra="\$redis" ;;
  l2) extra="[cache]
max_size = \"1MiB\"
max_entry_size = \"1MiB\"

\$redis" ;;
  *) extra="" ;;
esac
cat >"$work/\$name.toml" <<TOML
listen = "127.0.0.1:\$PORT"

[origin]
url = "\$ORIGIN_URL"

[[route]]
path = "/page/:id"
revalidate = \$revalidate

\$extra
TOML
echo \$\$ >"$work/\$name.pid"
export RUST_LOG=\${RUST_LOG:-warn}
exec "\${ISR_BIN:-$bin}" --config "$work/\$name.toml"
EOF
chmod +x "$work/run-isr-proxy.sh"

candidates=(--candidate "isr-proxy=exec $work/run-isr-proxy.sh")
[ $with_disk = 1 ] && candidates+=(--candidate "isr-proxy-disk=exec $work/run-isr-proxy.sh disk")
[ -n "$baseline" ] && candidates+=(--candidate "isr-proxy-base=exec env ISR_BIN=$baseline $work/run-isr-proxy.sh base")
if [ $with_redis = 1 ]; then
  command -v redis-server >/dev/null || die "redis-server not found (apt-get install -y redis-server)"
  REDIS_PORT=$(python3 "$bench/benchutil.py" freeport)
  export REDIS_PORT
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$work/redis.pid" --logfile "$work/redis.log"
  candidates+=(--candidate "isr-proxy-redis=exec $work/run-isr-proxy.sh redis")
  candidates+=(--candidate "isr-proxy-l2=exec $work/run-isr-proxy.sh l2")
fi
if [ $origin_given = 0 ]; then
  args=(--origin-port "$(python3 "$bench/benchutil.py" freeport)" "${args[@]}")
fi

# In the background and waited for, so that a signal reaches the trap at once and cleanup can stop compare.sh
# (which then stops everything it started). timeout bounds the run; -k kills compare.sh if TERM is not enough.
timeout -k 30 "$max_seconds" "$compare" "${candidates[@]}" "${args[@]}" &
cmp_pid=$!
rc=0
wait "$cmp_pid" || rc=$?
cmp_pid=""
[ $rc = 124 ] && echo "peers.sh: compare.sh stopped after PEERS_MAX_SECONDS=${max_seconds}s" >&2
exit "$rc"
