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

# Stops a compare.sh run started in the background (PID $1, may be empty): on TERM it stops everything it
# started (origin, limit server, peers, candidates).
stop_compare() {
  local pid=$1
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
