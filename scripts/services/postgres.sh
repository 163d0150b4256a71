#!/usr/bin/env bash
# Starts (or reuses) a private PostgreSQL 15 cluster for the tests: Debian's binaries, run as the
# `postgres` user, listening on 127.0.0.1 only, on a private port, with its state and log under
# $VF_TEST_STATE_DIR/postgres. Prints only `export VF_TEST_POSTGRES_URL=...` on stdout.
#   scripts/services/postgres.sh start   # idempotent; quick when already running
#   scripts/services/postgres.sh stop
set -euo pipefail

action="${1:-start}"
port="${VF_TEST_POSTGRES_PORT:-54329}"
state_root="${VF_TEST_STATE_DIR:-${TMPDIR:-/tmp}/videofoundry-test}"
state_dir="${state_root}/postgres"
data_dir="${state_dir}/data"
log_file="${state_dir}/postgres.log"
superuser="postgres"
password_file="${state_dir}/superuser-password"

# Debian's binaries first: /usr/local/bin may hold other builds.
bin_dir=""
for candidate in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
  if [ -x "${candidate}/initdb" ] && [ -x "${candidate}/pg_ctl" ]; then
    bin_dir="${candidate}"
    break
  fi
done
if [ -z "${bin_dir}" ]; then
  echo "PostgreSQL is not installed: run scripts/install/postgres.sh" >&2
  exit 1
fi

# Runs a command as the postgres user (or as ourselves when we are not root).
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

is_running() {
  [ -f "${data_dir}/postmaster.pid" ] && as_postgres "${bin_dir}/pg_ctl" -D "${data_dir}" status >/dev/null 2>&1
}

case "${action}" in
  start) ;;
  stop)
    if is_running; then
      as_postgres "${bin_dir}/pg_ctl" -D "${data_dir}" -m fast -w stop >&2
    fi
    exit 0
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

mkdir -p "${state_dir}"
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "${state_dir}"
  chmod 700 "${state_dir}"
fi

touch "${log_file}"
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "${log_file}"
fi

if [ ! -s "${password_file}" ]; then
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"${password_file}")
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "${password_file}"
  fi
fi
password="$(cat "${password_file}")"

if [ ! -f "${data_dir}/PG_VERSION" ]; then
  echo "initialising a PostgreSQL cluster in ${data_dir}" >&2
  as_postgres "${bin_dir}/initdb" -D "${data_dir}" -U "${superuser}" --pwfile="${password_file}" \
    --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >>"${log_file}" 2>&1
fi

if ! is_running; then
  echo "starting PostgreSQL on 127.0.0.1:${port} (log: ${log_file})" >&2
  as_postgres "${bin_dir}/pg_ctl" -D "${data_dir}" -l "${log_file}" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories='${state_dir}' -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >&2
fi

# Wait until the server answers on TCP (pg_ctl -w already waits; this guards a reused cluster).
deadline=$((SECONDS + 30))
until PGPASSWORD="${password}" psql -h 127.0.0.1 -p "${port}" -U "${superuser}" -d postgres -Atqc 'select 1' >/dev/null 2>&1; do
  if [ "${SECONDS}" -ge "${deadline}" ]; then
    echo "PostgreSQL did not answer on 127.0.0.1:${port}; see ${log_file}" >&2
    exit 1
  fi
  sleep 0.2
done

echo "export VF_TEST_POSTGRES_URL=postgres://${superuser}:${password}@127.0.0.1:${port}/postgres"
