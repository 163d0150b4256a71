#!/usr/bin/env bash
# Starts (or reuses) the real Kubernetes v1.28.7 control plane from ../shared/k8s
# (kube-apiserver, kube-controller-manager, etcd) on 127.0.0.1, with its state under
# $VF_TEST_STATE_DIR/k8s. Prints `export VF_TEST_KUBECONFIG=...` and
# `export VF_TEST_K8S_AUDIT_LOG=...` (the API server's log of every write request).
# Where ../shared/k8s is missing it says so and prints nothing: the e2e tests then skip.
#   scripts/services/kubernetes.sh start   # idempotent; instant when already running
#   scripts/services/kubernetes.sh stop
set -euo pipefail
cd "$(dirname "$0")/../.."
action="${1:-start}"
state_root="${VF_TEST_STATE_DIR:-${TMPDIR:-/tmp}/videofoundry-test}"
state_dir="${state_root}/k8s"
shared="$(pwd)/../shared/k8s"
if [ ! -d "$shared" ]; then
  echo "../shared/k8s is absent: no local Kubernetes control plane (the e2e tests skip; VF_E2E=1 with KUBECONFIG uses your own cluster)" >&2
  exit 0
fi
case "$action" in
  start)
    mkdir -p "$state_dir"
    # start.sh prints `export KUBECONFIG=...`; tests read VF_TEST_KUBECONFIG so that a user's
    # own KUBECONFIG is never touched by accident.
    kubeconfig="$(bash "$shared/start.sh" "$state_dir" | sed -n 's/^export KUBECONFIG=//p')"
    if [ -z "$kubeconfig" ]; then
      echo "the control plane did not start; see ${state_dir}/logs" >&2
      exit 1
    fi
    echo "export VF_TEST_KUBECONFIG=${kubeconfig}"
    echo "export VF_TEST_K8S_AUDIT_LOG=${state_dir}/logs/audit.log"
    ;;
  stop)
    bash "$shared/stop.sh" "$state_dir" >&2
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
