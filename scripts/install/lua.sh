#!/usr/bin/env bash
# Installs Lua 5.1 (Debian's lua5.1), the Lua of Argo CD's health checks: tests/gitops_health.rs
# runs the shipped health scripts with it. Skips when it is already present.
set -euo pipefail
if command -v lua5.1 >/dev/null 2>&1; then
  exit 0
fi
if ! apt-cache show lua5.1 >/dev/null 2>&1; then
  apt-get update
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends lua5.1
lua5.1 -v
