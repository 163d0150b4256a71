#!/usr/bin/env bash
# Installs Ceph's monitor, OSD, RADOS Gateway and admin tools from Debian bookworm (Ceph 16).
# scripts/services/ceph-rgw.sh runs them as a single-node S3 gateway on 127.0.0.1 (no systemd);
# the storage isolation tests need a real gateway that enforces bucket policies.
set -euo pipefail
needed=()
command -v ceph-mon >/dev/null 2>&1 || needed+=(ceph-mon)
command -v ceph-osd >/dev/null 2>&1 || needed+=(ceph-osd)
command -v radosgw >/dev/null 2>&1 || needed+=(radosgw)
command -v radosgw-admin >/dev/null 2>&1 || needed+=(ceph-common)
command -v ceph-authtool >/dev/null 2>&1 || needed+=(ceph-common)
command -v monmaptool >/dev/null 2>&1 || needed+=(ceph-common)
if [ ${#needed[@]} -eq 0 ]; then
  echo "ceph already installed: $(ceph --version 2>/dev/null | head -n1)" >&2
  exit 0
fi
if ! apt-cache show radosgw >/dev/null 2>&1; then
  apt-get update
fi
# ceph-mon and ceph-osd install systemd units; nothing here starts them (the service script
# runs the daemons directly), so tell dpkg not to start services on install.
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common
ceph --version | head -n1 >&2
