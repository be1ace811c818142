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

# Debian packages: the runtime, CNI plugins, the busybox image's binary, etcd.
pkgs=()
command -v containerd >/dev/null || pkgs+=(containerd)
command -v runc >/dev/null || pkgs+=(runc)
[ -x /usr/lib/cni/bridge ] || pkgs+=(containernetworking-plugins)
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || pkgs+=(busybox-static)
command -v etcd >/dev/null || pkgs+=(etcd-server)
for c in openssl jq curl iptables; do command -v "$c" >/dev/null || pkgs+=("$c"); done
if [ ${#pkgs[@]} -gt 0 ]; then
  log "apt-get install ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null; }
fi
[ -x "$MINIO" ] && [ -x "$HOARD_CACHE/bin/helm" ] || "$repo/scripts/install-tools.sh"

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

mkdir -p "$K8S_CACHE"
exec 8>"$K8S_CACHE/.cluster.lock"
if ! flock -n 8; then
  log "another e2e run holds $K8S_CACHE/.cluster.lock; waiting for it (up to 1 hour)"
  flock -w 3600 8 || die "the e2e lock stayed taken for an hour"
fi

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

passed=false
finish() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ "$passed" != true ]; then
    if [ -f "$RUN/pids/kube-apiserver" ]; then
      local ns p
      for ns in "$HOARD_NS" "$NS"; do
        for p in $(kubectl -n "$ns" get pods -o name 2>/dev/null); do
          kubectl -n "$ns" logs --all-containers --prefix "$p" >"$RUN/logs/${p#pod/}.log" 2>&1
          kubectl -n "$ns" logs --all-containers --prefix --previous "$p" >"$RUN/logs/${p#pod/}.previous.log" 2>/dev/null
        done
      done
      kubectl get pods -A -o wide >&2
    fi
    log "the end of each log ($RUN/logs):"
    for f in "$RUN"/logs/*.log; do
      [ -s "$f" ] || continue
      printf '\n==> %s <==\n' "$f" >&2
      tail -n 15 "$f" | cut -c1-400 >&2
    done
  fi
  log "tearing down"
  local t=$SECONDS
  cluster_down
  stop minio
  rm -f "$K8S_CACHE/current-multinode-run"
  log "torn down in $((SECONDS - t))s"
  if [ "$passed" = true ] && [ "${HOARD_E2E_KEEP_LOGS:-}" != 1 ]; then
    rm -rf "$RUN"
  else
    log "logs and state: $RUN"
  fi
  if [ "$passed" = true ]; then
    log "PASS in $((SECONDS - total))s"
  else
    log "FAIL after $((SECONDS - total))s"
    [ "$rc" != 0 ] || rc=1
  fi
  exit "$rc"
}
trap finish EXIT
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
