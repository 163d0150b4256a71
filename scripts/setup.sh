#!/usr/bin/env bash
# Installs everything the operator's tests need on a fresh Debian bookworm machine, from the
# package registries by name. Safe to re-run: each installer skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
for installer in scripts/install/*.sh; do
  [ -e "$installer" ] || continue
  echo "==> ${installer}"
  bash "$installer"
done
