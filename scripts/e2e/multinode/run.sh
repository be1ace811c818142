#!/usr/bin/env bash
# hoard's multi-node end-to-end suite (make e2e): a real Kubernetes v1.34 of
# one control plane and 3 kubelets on this one machine, each kubelet with its
# own containerd, root dir, cgroup and network + mount namespace (test nodes
# made by tests/nodes, on bridge hke0, 10.91.0.0/24), MinIO on the host's
# bridge address, hoard installed with its Helm chart (values.yaml: the
# cluster cache, a worker per node), and busybox pods on different nodes
# reading the same data (see test.sh for the cases). Root only; waits for the e2e lock, so it never overlaps another
# e2e run.
#
# Cold (first run on a machine): Kubernetes and the external-provisioner are
# built into $HOARD_CACHE/k8s (8-15 minutes). Warm: see docs/operations.md.
# Everything is torn down on exit, also after a failure, Ctrl-C, or (at the
# next run) a SIGKILL; logs stay in the printed directory when the run fails
# (HOARD_E2E_KEEP_LOGS=1 keeps them anyway).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
e2e=$(cd "$here/.." && pwd)
repo=$(cd "$e2e/../.." && pwd)
. "$e2e/lib.sh"

[ "$(id -u)" = 0 ] || die "needs root (kubelets, containerds, network namespaces, FUSE mounts)"
if [ -n "${HOARD_BIN:-}" ]; then HOARD_BIN=$(realpath "$HOARD_BIN"); fi
total=$SECONDS

install_prerequisites iptables

"$e2e/build.sh"

RUN=$(mktemp -d /tmp/hoard-e2e-mn.XXXXXX)
mkdir -p "$RUN/bin" "$RUN/logs"
(cd "$repo" && CGO_ENABLED=0 go build -o "$RUN/bin/hoard-nodes" ./tests/nodes/cmd/hoard-nodes)
if [ -z "${HOARD_BIN:-}" ]; then
  (cd "$repo" && CGO_ENABLED=0 go build -o "$RUN/bin/hoard" ./cmd/hoard)
  HOARD_BIN=$RUN/bin/hoard
fi
export HOARD_BIN
NODES=$RUN/bin/hoard-nodes

take_cluster_lock

# A run killed before its teardown (SIGKILL) leaves its processes and nodes:
# remove them by what it recorded.
if prev=$(cat "$K8S_CACHE/current-multinode-run" 2>/dev/null) && [ -d "$prev" ]; then
  log "removing what an interrupted run left ($prev)"
  if (RUN=$prev; NODES=$RUN/bin/hoard-nodes; . "$here/cluster.sh"; cluster_down; stop minio) &&
    ! grep -q " $prev/" /proc/self/mountinfo; then
    rm -rf --one-file-system "$prev"
  fi
fi
echo "$RUN" >"$K8S_CACHE/current-multinode-run"

. "$here/cluster.sh"
. "$e2e/chart.sh"
. "$here/test.sh"
. "$e2e/ops.sh"

passed=false
teardown() {
  cluster_down
  stop minio
  rm -f "$K8S_CACHE/current-multinode-run"
}
trap 'finish_run "$HOARD_NS" "$NS"' EXIT
trap 'exit 130' INT TERM

t=$SECONDS
tars=$("$e2e/images.sh" "$RUN/images")
log "images built in $((SECONDS - t))s"
t=$SECONDS
# shellcheck disable=SC2086
cluster_up $tars
log "cluster of $MN_NODES nodes up in $((SECONDS - t))s (kubectl: KUBECONFIG=$KUBECONFIG $K8S_BIN/kubectl; nodes: $NODES --state $NSTATE)"
t=$SECONDS
run_tests
log "tests passed in $((SECONDS - t))s"
passed=true
