#!/usr/bin/env bash
# Installs gVisor's `runsc` from Debian's bookworm main archive (package `runsc`, a 2022 release;
# no backports needed). The sandbox conformance test runs a probe under `runsc run`.
set -euo pipefail
if command -v runsc >/dev/null 2>&1; then
  echo "runsc already installed: $(runsc --version 2>/dev/null | head -n1)" >&2
  exit 0
fi
if ! apt-cache show runsc >/dev/null 2>&1; then
  apt-get update
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends runsc
runsc --version | head -n1 >&2
