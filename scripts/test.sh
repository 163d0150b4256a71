#!/usr/bin/env bash
# Starts the real servers the tests talk to (all on 127.0.0.1), then runs the whole test suite.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh postgres`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/videofoundry-operator/target}"
export VF_TEST_STATE_DIR="${VF_TEST_STATE_DIR:-${TMPDIR:-/tmp}/videofoundry-test}"
mkdir -p "$VF_TEST_STATE_DIR"
# Each service script prints `export NAME=value` lines describing the server it started.
for service in scripts/services/*.sh; do
  [ -e "$service" ] || continue
  echo "==> starting ${service}" >&2
  env_lines="$(bash "$service" start)"
  eval "$env_lines"
done
# Tests that need a server fail (instead of skipping) when it is missing.
export VF_TEST_REQUIRE_SERVICES=1
cargo test --locked "$@"
