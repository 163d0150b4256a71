#!/usr/bin/env bash
# Runs a single-node Ceph cluster with a RADOS Gateway on 127.0.0.1, without systemd, for the
# storage isolation tests (DESIGN.md §6): one monitor (msgr v1), one memstore OSD, pools of
# size 1, radosgw (beast) serving HTTPS with a self-signed certificate and plain HTTP on two
# private ports, SSE-KMS with the `testing` key backend. Creates an operator user and two tenant
# principals (A and B) with radosgw-admin.
#
#   scripts/services/ceph-rgw.sh start   # prints only `export VF_TEST_S3_...=...` lines
#   scripts/services/ceph-rgw.sh stop
#
# Idempotent: when the gateway already answers, `start` only prints the variables. State, logs
# and generated keys live under $VF_TEST_STATE_DIR/ceph. The memstore OSD keeps objects in
# memory, so a stopped cluster is rebuilt from scratch on the next start.
set -euo pipefail

STATE_ROOT="${VF_TEST_STATE_DIR:-${TMPDIR:-/tmp}/videofoundry-test}"
DIR="${STATE_ROOT}/ceph"
MON_PORT="${VF_CEPH_MON_PORT:-16789}"
RGW_HTTPS_PORT="${VF_CEPH_RGW_HTTPS_PORT:-17443}"
RGW_HTTP_PORT="${VF_CEPH_RGW_HTTP_PORT:-17480}"
CONF="${DIR}/ceph.conf"
KMS_KEY_ID="vf-test-key"

log() { echo "ceph-rgw: $*" >&2; }

ceph_cli() { ceph -c "$CONF" --connect-timeout 10 "$@"; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

rgw_answers() {
  curl -s -o /dev/null --max-time 2 --cacert "${DIR}/tls/ca.pem" "https://localhost:${RGW_HTTPS_PORT}/" &&
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:${RGW_HTTP_PORT}/"
}

wait_until() {
  local what="$1" seconds="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "timed out after ${seconds}s waiting for ${what}; logs in ${DIR}/log"
      return 1
    fi
    sleep 0.5
  done
}

# Stops the daemons this script started, by the pid files they wrote, one after the other
# (the gateway first: it hangs on shutdown once the monitor is gone).
stop_daemons() {
  local name
  for name in "$@"; do
    if pid_alive "${DIR}/run/${name}.pid"; then
      kill "$(cat "${DIR}/run/${name}.pid")" 2>/dev/null || true
    fi
    local deadline=$((SECONDS + 15))
    while pid_alive "${DIR}/run/${name}.pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if pid_alive "${DIR}/run/${name}.pid"; then kill -9 "$(cat "${DIR}/run/${name}.pid")" 2>/dev/null || true; fi
  done
}

ALL_DAEMONS=(client.rgw.a osd.0 mon.a)

require_free_port() {
  if (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    log "port $1 is already in use (another cluster? set VF_CEPH_*_PORT or stop it)"
    exit 1
  fi
}

write_config() {
  local fsid="$1"
  cat >"$CONF" <<CONF
[global]
fsid = ${fsid}
mon host = v1:127.0.0.1:${MON_PORT}
mon initial members = a
public network = 127.0.0.0/8
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = ${DIR}/keyring
run dir = ${DIR}/run
admin socket = ${DIR}/run/\$name.asok
pid file = ${DIR}/run/\$name.pid
log file = ${DIR}/log/\$name.log
log to stderr = false
err to stderr = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd pool default pg autoscale mode = off

[mon.a]
mon data = ${DIR}/mon
mon cluster log file = ${DIR}/log/cluster.log

[osd.0]
keyring = ${DIR}/osd/keyring
osd data = ${DIR}/osd
osd objectstore = memstore
memstore device bytes = 2147483648
osd max object name len = 460
osd max object namespace len = 64

[client.rgw.a]
keyring = ${DIR}/rgw.keyring
rgw data = ${DIR}/rgw
rgw frontends = beast endpoint=127.0.0.1:${RGW_HTTP_PORT} ssl_endpoint=127.0.0.1:${RGW_HTTPS_PORT} ssl_certificate=${DIR}/tls/server.pem ssl_private_key=${DIR}/tls/server.key
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = ${KMS_KEY_ID}=$(cat "${DIR}/kms.key")
rgw crypt require ssl = false
rgw lc debug interval = 10
rgw enable usage log = false
rgw dns name = localhost
CONF
}

make_tls() {
  mkdir -p "${DIR}/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=videofoundry-test-ca" \
    -keyout "${DIR}/tls/ca.key" -out "${DIR}/tls/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "${DIR}/tls/server.key" -out "${DIR}/tls/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"${DIR}/tls/ext.cnf"
  openssl x509 -req -in "${DIR}/tls/server.csr" -CA "${DIR}/tls/ca.pem" -CAkey "${DIR}/tls/ca.key" \
    -CAcreateserial -days 3650 -extfile "${DIR}/tls/ext.cnf" -out "${DIR}/tls/server.pem" 2>/dev/null
}

bootstrap() {
  log "bootstrapping a single-node cluster in ${DIR}"
  stop_daemons "${ALL_DAEMONS[@]}"
  require_free_port "$MON_PORT"
  require_free_port "$RGW_HTTPS_PORT"
  require_free_port "$RGW_HTTP_PORT"
  rm -rf "$DIR"
  mkdir -p "${DIR}"/{mon,osd,rgw,run,log}
  head -c 32 /dev/urandom | base64 >"${DIR}/kms.key"
  make_tls
  local fsid
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  write_config "$fsid"

  ceph-authtool --create-keyring "${DIR}/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >&2
  ceph-authtool --create-keyring "${DIR}/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >&2
  ceph-authtool "${DIR}/mon.keyring" --import-keyring "${DIR}/keyring" >&2
  monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:${MON_PORT}]" "${DIR}/monmap" >&2
  ceph-mon -c "$CONF" --mkfs -i a --monmap "${DIR}/monmap" --keyring "${DIR}/mon.keyring" >&2
  ceph-mon -c "$CONF" -i a >&2
  wait_until "the monitor" 30 ceph_cli mon stat

  local osd_uuid osd_id
  osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
  osd_id="$(ceph_cli osd new "$osd_uuid")"
  [ "$osd_id" = 0 ] || { log "unexpected OSD id ${osd_id}"; return 1; }
  ceph-authtool --create-keyring "${DIR}/osd/keyring" --gen-key -n osd.0 >&2
  ceph-osd -c "$CONF" -i 0 --mkfs --no-mon-config --osd-uuid "$osd_uuid" >>"${DIR}/log/osd-mkfs.log" 2>&1
  ceph_cli auth add osd.0 osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' \
    -i "${DIR}/osd/keyring" >&2
  start_osd

  ceph_cli auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' mgr 'allow rw' \
    -o "${DIR}/rgw.keyring" >&2
  start_rgw
  create_users
}

start_osd() {
  ceph-osd -c "$CONF" -i 0 >&2
  wait_until "the OSD to come up" 60 bash -c "ceph -c '$CONF' osd dump 2>/dev/null | grep -q '^osd.0 up'"
}

start_rgw() {
  radosgw -c "$CONF" -n client.rgw.a >&2
  wait_until "the RADOS Gateway" 90 rgw_answers
}

# Creates (or reads back) a user and stores its keys in ${DIR}/users/<uid>.
ensure_user() {
  local uid="$1" display="$2"
  mkdir -p "${DIR}/users"
  if [ ! -s "${DIR}/users/${uid}.json" ]; then
    if ! radosgw-admin -c "$CONF" user info --uid="$uid" >"${DIR}/users/${uid}.json" 2>/dev/null; then
      radosgw-admin -c "$CONF" user create --uid="$uid" --display-name="$display" \
        >"${DIR}/users/${uid}.json" 2>>"${DIR}/log/radosgw-admin.log"
    fi
  fi
}

user_key() {
  python3 -c 'import json,sys; k=json.load(open(sys.argv[1]))["keys"][0]; print(k[sys.argv[2]])' \
    "${DIR}/users/$1.json" "$2"
}

create_users() {
  ensure_user vf-operator "Video Foundry operator"
  ensure_user vf-tenant-a "Tenant principal A"
  ensure_user vf-tenant-b "Tenant principal B"
}

print_env() {
  echo "export VF_TEST_S3_ENDPOINT=https://localhost:${RGW_HTTPS_PORT}"
  echo "export VF_TEST_S3_PLAIN_ENDPOINT=http://127.0.0.1:${RGW_HTTP_PORT}"
  echo "export VF_TEST_S3_CA_FILE=${DIR}/tls/ca.pem"
  echo "export VF_TEST_S3_REGION=us-east-1"
  echo "export VF_TEST_S3_PROVIDER=ceph-rgw-16"
  echo "export VF_TEST_S3_KMS_KEY_ID=${KMS_KEY_ID}"
  local who var
  for who in operator:ADMIN tenant-a:TENANT_A tenant-b:TENANT_B; do
    var="${who#*:}"
    echo "export VF_TEST_S3_${var}_ARN=arn:aws:iam:::user/vf-${who%%:*}"
    echo "export VF_TEST_S3_${var}_ACCESS_KEY_ID=$(user_key "vf-${who%%:*}" access_key)"
    echo "export VF_TEST_S3_${var}_SECRET_ACCESS_KEY=$(user_key "vf-${who%%:*}" secret_key)"
  done
}

start() {
  for tool in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool openssl curl python3; do
    command -v "$tool" >/dev/null 2>&1 || { log "${tool} is missing: run scripts/install/ceph.sh"; exit 1; }
  done
  if [ -f "$CONF" ] && pid_alive "${DIR}/run/mon.a.pid" && pid_alive "${DIR}/run/osd.0.pid" &&
    pid_alive "${DIR}/run/client.rgw.a.pid" && rgw_answers && [ -s "${DIR}/users/vf-tenant-b.json" ]; then
    log "already running"
  elif [ -f "$CONF" ] && pid_alive "${DIR}/run/mon.a.pid" && pid_alive "${DIR}/run/osd.0.pid"; then
    log "restarting the gateway"
    stop_daemons client.rgw.a
    require_free_port "$RGW_HTTPS_PORT"
    require_free_port "$RGW_HTTP_PORT"
    start_rgw
    create_users
  else
    bootstrap
  fi
  print_env
}

case "${1:-start}" in
  start) start ;;
  stop)
    stop_daemons "${ALL_DAEMONS[@]}"
    log "stopped"
    ;;
  env) print_env ;;
  *)
    log "usage: $0 start|stop|env"
    exit 2
    ;;
esac
