#!/usr/bin/env bash
# Installs promtool (Debian's `prometheus` package) for the alert-rule tests
# (tests/alert_rules.rs runs `promtool test rules` on the chart's PrometheusRule).
# Skips when promtool is already present.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
sudo_if_needed apt-get update -qq
# The package's service is not started in containers without systemd; only promtool is used.
sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
promtool --version | head -1
