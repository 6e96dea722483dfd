#!/usr/bin/env bash
# Checks the deploy files with the tools that know their formats (CI runs this; tests/deploy_files.rs checks
# what a test can): promtool for the alerting rules, systemd-analyze for the unit, and isr-proxy itself for the
# unit's config. Needs promtool (Debian: prometheus), systemd-analyze (Debian: systemd) and a built binary
# (ISR_PROXY_BIN, default target/debug/isr-proxy). The Dockerfile is not built here: that needs a container
# engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${ISR_PROXY_BIN:-target/debug/isr-proxy}

promtool check rules deploy/prometheus/alerts.yml

# `verify` checks that ExecStart exists and that EnvironmentFile is readable: point both at this checkout.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e "s|/usr/local/bin/isr-proxy|$(realpath "$bin")|" \
    -e "s|EnvironmentFile=/etc/isr-proxy/isr-proxy.env|EnvironmentFile=$PWD/deploy/systemd/isr-proxy.env|" \
    deploy/systemd/isr-proxy.service >"$tmp/isr-proxy.service"
systemd-analyze verify "$tmp/isr-proxy.service"
# Exposure 2.0 or less ("OK" in systemd's own scale; the unit scores about 1.4).
systemd-analyze security --offline=true --threshold=20 "$tmp/isr-proxy.service" >/dev/null
echo "deploy/systemd/isr-proxy.service: verified, exposure within 2.0"

"$bin" check --config deploy/systemd/isr-proxy.toml >/dev/null
echo "deploy/systemd/isr-proxy.toml: valid"
