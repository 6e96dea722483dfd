# shellcheck shell=bash
# common.sh: what peers.sh and scale.sh share, sourced by both (they define `die` first).

# Builds isr-proxy in release mode from the checkout at $1 and prints the binary's path.
release_binary() {
  local root=$1 target_dir bin
  echo "building isr-proxy (release)" >&2
  cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin isr-proxy || die "release build failed"
  target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  bin="$target_dir/release/isr-proxy"
  [ -x "$bin" ] || die "$bin missing after the build"
  echo "$bin"
}

# On exit (and on INT or TERM, with their exit codes): stops the compare.sh run in $cmp_pid (on TERM it stops
# everything it started: origin, limit server, peers, candidates), runs the caller's `cleanup_more` if it defines
# one, and removes $work. Call once both variables are set.
cleanup_on_exit() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "${cmp_pid:-}" ] && kill -0 "$cmp_pid" 2>/dev/null; then
    kill -TERM "$cmp_pid" 2>/dev/null || true
    wait "$cmp_pid" 2>/dev/null || true
  fi
  if declare -F cleanup_more >/dev/null; then cleanup_more; fi
  rm -rf "${work:?}"
  exit "$rc"
}
