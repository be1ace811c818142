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

# Debian packages: the runtime, CNI plugins, the busybox image's binary.
pkgs=()
command -v containerd >/dev/null || pkgs+=(containerd)
command -v runc >/dev/null || pkgs+=(runc)
[ -x /usr/lib/cni/bridge ] || pkgs+=(containernetworking-plugins)
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || pkgs+=(busybox-static)
command -v etcd >/dev/null || pkgs+=(etcd-server)
command -v openssl >/dev/null || pkgs+=(openssl)
command -v jq >/dev/null || pkgs+=(jq)
command -v curl >/dev/null || pkgs+=(curl)
if [ ${#pkgs[@]} -gt 0 ]; then
  log "apt-get install ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null; }
fi
[ -x "$MINIO" ] && [ -x "$HOARD_CACHE/bin/helm" ] || "$here/../install-tools.sh"

"$here/build.sh"

mkdir -p "$K8S_CACHE"
exec 8>"$K8S_CACHE/.cluster.lock"
if ! flock -n 8; then
  log "another e2e run holds $K8S_CACHE/.cluster.lock (one cluster per machine): waiting for it, at most 30 minutes"
  flock -w 1800 8 || die "another e2e run held $K8S_CACHE/.cluster.lock for 30 minutes"
fi

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
finish() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ "$passed" != true ]; then
    if [ -f "$RUN/pids/kube-apiserver" ]; then
      # The pods' logs, of the containers before a restart too.
      local p
      for p in $(kubectl -n hoard-system get pods -o name 2>/dev/null); do
        kubectl -n hoard-system logs --all-containers --prefix "$p" >"$RUN/logs/${p#pod/}.log" 2>&1
        kubectl -n hoard-system logs --all-containers --prefix --previous "$p" >"$RUN/logs/${p#pod/}.previous.log" 2>/dev/null
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
  down
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
