#!/usr/bin/env bash
# Installs PyPI `kubernetes-validate`: offline JSON-schema validation of manifests for each
# Kubernetes release it ships schemas for. The sandbox schema test runs it with `--strict` for
# Kubernetes 1.28 (the oldest we support) and the newest release the installed version knows.
set -euo pipefail
if command -v kubernetes-validate >/dev/null 2>&1; then
  echo "kubernetes-validate already installed" >&2
  exit 0
fi
python3 -m pip install --quiet kubernetes-validate
command -v kubernetes-validate >/dev/null
