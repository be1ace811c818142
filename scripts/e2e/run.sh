#!/usr/bin/env bash
# hoard's end-to-end suite (make e2e): a real single-node Kubernetes v1.34
# (etcd, API server, controller manager, scheduler, containerd, kubelet) on
# loopback, MinIO, and hoard installed with its Helm chart
# (deploy/helm/hoard, values in scripts/e2e/values.yaml: the cluster cache
# on); busybox pods read volumes through it (see test.sh for the cases).
# Root only; one run at a time per machine.
#
# Cold (first run on a machine): 8-15 minutes, mostly building Kubernetes
# and the external-provisioner into $HOARD_CACHE/k8s. Warm: about 2
# minutes. The cluster and every process are torn down on exit; the logs
# stay in the printed directory when the run fails (HOARD_E2E_KEEP_LOGS=1
# keeps them anyway).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ "$(id -u)" = 0 ] || die "needs root (a kubelet, containerd, FUSE mounts)"
if [ -n "${HOARD_BIN:-}" ]; then HOARD_BIN=$(realpath "$HOARD_BIN"); export HOARD_BIN; fi
total=$SECONDS

install_prerequisites
"$here/build.sh"

take_cluster_lock

# Host directories of the e2e overlay's hostPaths; the node plugin mounts
# under /run/hoard-e2e with Bidirectional propagation, so it must be shared.
HOARD_RUN=/run/hoard-e2e
HOARD_VAR=/var/lib/hoard-e2e

# down: stops MinIO and the cluster of $RUN, and removes the hostPaths.
down() {
  stop minio
  cluster_down
  local m
  for m in $(mounts_under "$HOARD_RUN"); do umount "$m" 2>/dev/null || umount -l "$m"; done
  rm -rf "$HOARD_RUN" "$HOARD_VAR" "$K8S_CACHE/current-run"
}

# A run killed before its teardown (SIGKILL) leaves its processes: stop
# them by the pids it recorded.
if prev=$(cat "$K8S_CACHE/current-run" 2>/dev/null) && [ -d "$prev/pids" ]; then
  log "stopping what an interrupted run left ($prev)"
  (RUN=$prev; . "$here/cluster.sh"; down) || true
fi

RUN=$(mktemp -d /tmp/hoard-e2e.XXXXXX)
echo "$RUN" >"$K8S_CACHE/current-run"
. "$here/cluster.sh"
. "$here/chart.sh"
. "$here/test.sh"
. "$here/ops.sh"

passed=false
teardown() { down; }
trap 'finish_run "$HOARD_NS" "$NS"' EXIT
trap 'exit 130' INT TERM

mkdir -p "$HOARD_RUN" "$HOARD_VAR"
mount --bind "$HOARD_RUN" "$HOARD_RUN"
mount --make-rshared "$HOARD_RUN"

t=$SECONDS
tars=$("$here/images.sh" "$RUN/images")
cluster_up $tars
log "cluster up in $((SECONDS - t))s (kubectl: KUBECONFIG=$KUBECONFIG $K8S_BIN/kubectl)"
t=$SECONDS
run_tests
log "tests passed in $((SECONDS - t))s"
passed=true
