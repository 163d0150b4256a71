#!/usr/bin/env bash
# Installs PostgreSQL 15 from Debian bookworm's main archive (package `postgresql-15`). The tests
# start their own private cluster with scripts/services/postgres.sh; the Debian-managed cluster
# (if any) is left alone.
set -euo pipefail
if [ -x /usr/lib/postgresql/15/bin/postgres ] && [ -x /usr/lib/postgresql/15/bin/initdb ]; then
  echo "postgresql-15 already installed: $(/usr/lib/postgresql/15/bin/postgres --version)" >&2
  exit 0
fi
if ! apt-cache show postgresql-15 >/dev/null 2>&1; then
  apt-get update
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 postgresql-client-15
/usr/lib/postgresql/15/bin/postgres --version >&2
