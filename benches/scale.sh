#!/usr/bin/env bash
# scale.sh: how cache-HIT throughput grows with cores. For N = 1, 2, 4, 8, 16 (those that leave at least one core
# for the load generator), the servers run pinned to N cores and wrk to the others, and isr-proxy
# (`server.workers = N`), nginx proxy_cache (`worker_processes N`) and the bare-hyper limit server
# (TOKIO_WORKER_THREADS=N) are measured in front of the same origin, every measured request a cache hit.
#
# Each N is one run of the shared peer harness (../shared/bench/compare.sh beside the repo), started under
# `taskset -c <first N cores>` so that everything it starts (origin, limit server, candidates) inherits those
# cores, with a `wrk` on PATH that re-pins the real wrk to the remaining cores (wrk -t<remaining cores>
# -c<64 x N>). nginx runs as a compare.sh candidate from the harness's own template (peers/nginx.conf) with only
# worker_processes changed; isr-proxy as in peers.sh. Printed per N and target: req/s, server CPU µs/req (the
# server's process tree, as compare.sh computes it), origin fetches (0 = all hits) and the scaling efficiency
# req/s(N) / (N x req/s(1)). Per-N TSVs stay in --out DIR.
#
# usage: benches/scale.sh [options]
#   --rounds R        alternating rounds per N (default 3)
#   --duration S      seconds per wrk run (default 5)
#   --size BYTES      page size (default 8192)
#   --paths K         distinct paths /page/1..K (default 1000)
#   --quiet-wait S    before each run, wait up to S s for the machine to be idle (default 30)
#   --out DIR         where the per-N TSVs go (default /tmp/isr-scale)
#   -h, --help        this text
# env:
#   SCALE_MAX_SECONDS hard bound on the whole script (default 3600); the run in progress is stopped after it
#   RUST_LOG          isr-proxy's log filter (default warn)
# examples:
#   benches/scale.sh                                 # 3 rounds x 5 s per N
#   benches/scale.sh --rounds 1 --duration 3         # smoke run
#
# It installs nothing: if a tool is missing it prints the apt-get line and exits.
set -euo pipefail

die() { echo "scale.sh: $*" >&2; exit 1; }

rounds=3 duration=5 size=8192 paths=1000 quiet_wait=30 out=/tmp/isr-scale
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=${2-}; shift 2 ;;
    --duration) duration=${2-}; shift 2 ;;
    --size) size=${2-}; shift 2 ;;
    --paths) paths=${2-}; shift 2 ;;
    --quiet-wait) quiet_wait=${2-}; shift 2 ;;
    --out) out=${2-}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
max_seconds=${SCALE_MAX_SECONDS:-3600}
for v in rounds duration size paths quiet_wait max_seconds; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "${v//_/-} needs a whole number, got '${!v}'"
done

missing=()
for tool in wrk nginx taskset timeout python3 cargo; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  die "not found: ${missing[*]}; install with: apt-get update && apt-get install -y nginx-light wrk util-linux coreutils python3"
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=benches/common.sh
source "$here/common.sh"
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null) || die "$here is not inside a git checkout"
[ -f "$root/../shared/bench/compare.sh" ] || die "peer harness not found at $root/../shared/bench/compare.sh"
bench=$(cd "$root/../shared/bench" && pwd)

# The cores this script may use (its own affinity), in order: the first N serve, the rest generate load.
read -r -a cpus <<<"$(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')"
ns=()
for n in 1 2 4 8 16; do [ "$n" -lt "${#cpus[@]}" ] && ns+=("$n"); done
[ ${#ns[@]} -gt 0 ] || die "needs at least 2 cores (1 for the servers, 1 for wrk); this process may use ${#cpus[@]}"
cpu_list() { local IFS=,; echo "$*"; }

bin=$(release_binary "$root")

deadline=$((SECONDS + max_seconds))
# Fresh for the whole bounded run: compare.sh's own TTL estimate leaves out quiet waits and repeated rounds, and
# on a busy machine nginx's pages then went stale mid-run (1,000 origin fetches in a round).
ttl=$((max_seconds > 60 ? max_seconds : 60))
work=$(mktemp -d /tmp/isr-scale.XXXXXX)
mkdir -p "$out" "$work/bin"
cmp_pid=""
cleanup_on_exit

# Candidates compare.sh starts with PORT, ORIGIN_URL, ORIGIN_PORT, TTL and WORKDIR set; exec keeps the server's
# PID, so compare.sh's CPU accounting sees the server's own process tree. SCALE_N is the run's core count.
cat >"$work/run-isr-proxy.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
cat >"\$WORKDIR/isr-proxy.toml" <<TOML
listen = "127.0.0.1:\$PORT"

[server]
workers = \$SCALE_N

[origin]
url = "\$ORIGIN_URL"

[[route]]
path = "/page/:id"
revalidate = \$(( TTL > 3600 ? TTL : 3600 ))
TOML
export RUST_LOG=\${RUST_LOG:-warn}
exec "$bin" --config "\$WORKDIR/isr-proxy.toml"
EOF
cat >"$work/run-nginx.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
dir=\$WORKDIR/nginx-scale
mkdir -p "\$dir/nginx-tmp"
sed -e "s#@WORK@#\$dir#g" -e "s#@PORT@#\$PORT#g" -e "s#@ORIGIN_PORT@#\$ORIGIN_PORT#g" -e "s#@TTL@#\$TTL#g" \\
  -e "s#@GZIP@##g" -e "s#^worker_processes .*#worker_processes \$SCALE_N;#" "$bench/peers/nginx.conf" >"\$dir/nginx.conf"
grep -q "^worker_processes \$SCALE_N;" "\$dir/nginx.conf" || { echo "no worker_processes line in the template" >&2; exit 1; }
exec nginx -e "\$dir/nginx-error.log" -c "\$dir/nginx.conf" -p "\$dir/"
EOF
chmod +x "$work/run-isr-proxy.sh" "$work/run-nginx.sh"

for n in "${ns[@]}"; do
  serve=$(cpu_list "${cpus[@]:0:n}") load=$(cpu_list "${cpus[@]:n}")
  threads=$((${#cpus[@]} - n))
  printf '#!/bin/sh\nexec taskset -c %s %s "$@"\n' "$load" "$(command -v wrk)" >"$work/bin/wrk"
  chmod +x "$work/bin/wrk"
  left=$((deadline - SECONDS))
  [ "$left" -gt 0 ] || die "SCALE_MAX_SECONDS=$max_seconds reached before N=$n"
  echo "== N=$n: servers on cores $serve, wrk -t$threads -c$((64 * n)) on cores $load"
  PATH="$work/bin:$PATH" SCALE_N=$n TOKIO_WORKER_THREADS=$n timeout -k 30 "$left" \
    taskset -c "$serve" "$bench/compare.sh" --no-peers --threads "$threads" --conns $((64 * n)) \
    --rounds "$rounds" --duration "$duration" --size "$size" --paths "$paths" --quiet-wait "$quiet_wait" \
    --ttl "$ttl" \
    --candidate "isr-proxy=exec $work/run-isr-proxy.sh" --candidate "nginx=exec $work/run-nginx.sh" \
    --out "$out/scale-$n.tsv" &
  cmp_pid=$!
  rc=0
  wait "$cmp_pid" || rc=$?
  cmp_pid=""
  [ $rc = 124 ] && die "stopped after SCALE_MAX_SECONDS=${max_seconds}s during N=$n"
  [ $rc = 0 ] || die "compare.sh failed for N=$n (exit $rc)"
done

echo
echo "Scaling: $(nproc) cores; servers pinned to N cores, wrk to the rest; ${size} B pages, $paths paths, $rounds rounds x ${duration}s"
python3 - "$out" "${ns[@]}" <<'PY'
import csv, sys
out, ns = sys.argv[1], [int(n) for n in sys.argv[2:]]
rows = {n: {r["target"]: r for r in csv.DictReader(open(f"{out}/scale-{n}.tsv"), delimiter="\t")} for n in ns}
print(f"{'N':>3}  {'target':<10} {'req/s':>9} {'us/req':>7} {'efficiency':>10} {'fetches':>8} {'wrk CPU %':>10}")
for n in ns:
    for target in ("limit", "isr-proxy", "nginx"):
        r, one = rows[n].get(target), rows[ns[0]].get(target)
        if r is None:
            continue
        rps = float(r["req_s"])
        eff = rps / (n * float(one["req_s"])) if one else float("nan")
        us = f"{float(r['server_cpu_us_per_req']):.1f}" if r["server_cpu_us_per_req"] else "-"
        print(f"{n:>3}  {target:<10} {rps:>9.0f} {us:>7} {eff:>10.2f} {r['origin_fetches'] or '-':>8} {float(r['wrk_cpu_pct']):>10.0f}")
print("req/s and us/req: medians over rounds; efficiency: req/s at N / (N x req/s at 1); fetches: origin renders")
print("while measuring (0 = every measured request was a cache hit); wrk CPU %: near 100 x its threads means wrk,")
print("not the server, set the pace.")
PY
