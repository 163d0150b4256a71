#!/usr/bin/env bash
# Installs promtool from Debian's `prometheus` package for the alert-rule tests
# (tests/alert_rules.rs runs `promtool test rules` on the chart's PrometheusRule). Only promtool
# is used; the package's Prometheus service is not started here.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  echo "promtool already installed: $(promtool --version 2>&1 | head -n1)" >&2
  exit 0
fi
if ! apt-cache show prometheus >/dev/null 2>&1; then
  apt-get update
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
promtool --version 2>&1 | head -n1 >&2
