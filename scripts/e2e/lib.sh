# Shared settings and helpers of the e2e scripts (sourced, not run).
# Everything built or downloaded is cached under $HOARD_CACHE/k8s, keyed by
# version; nothing is written into the checkout.

HOARD_CACHE=${HOARD_CACHE:-/var/cache/hoard}
export PATH=$PATH:/usr/local/go/bin

K8S_VERSION=v1.34.4          # k8s.io/kubernetes
K8S_STAGING_VERSION=v0.34.4  # its staging modules (k8s.io/api, k8s.io/client-go, ...)
PROVISIONER_VERSION=v6.4.0   # github.com/kubernetes-csi/external-provisioner/v6
CRICTL_VERSION=v1.34.0       # sigs.k8s.io/cri-tools (Debian 12 has no cri-tools)

K8S_CACHE=$HOARD_CACHE/k8s
K8S_BIN=$K8S_CACHE/kubernetes-$K8S_VERSION/bin
PROVISIONER_BIN=$K8S_CACHE/external-provisioner-$PROVISIONER_VERSION/bin
CRICTL=$K8S_CACHE/cri-tools-$CRICTL_VERSION/bin/crictl
IMAGE_CACHE=$K8S_CACHE/images
MINIO=$HOARD_CACHE/bin/minio

K8S_COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

log() { printf '%s e2e: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# wait_for SECONDS WHAT CMD...: runs CMD (a command or a function; each
# attempt must be bounded itself) every half second until it succeeds; fails
# after SECONDS naming WHAT.
wait_for() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

# alive PID: the process exists and is not a zombie (kill -0 succeeds on
# zombies, and reaping can be late here).
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# http_ok URL: a 2xx answer within 5 seconds.
http_ok() { curl -sf --max-time 5 -o /dev/null "$1"; }

# jsonpath_is WANT KUBECTL_ARGS...: kubectl get ... -o jsonpath=... prints WANT.
jsonpath_is() { local want=$1; shift; [ "$(kubectl get "$@")" = "$want" ]; }

# replaces GOMOD: the replace directives of a go.mod, one "old => new" a line.
replaces() {
  awk '/^replace[ \t]*\($/ {b=1; next}
       b && /^\)/ {b=0; next}
       b && NF {print; next}
       /^replace[ \t]/ {sub(/^replace[ \t]+/, ""); print}' "$1"
}

# ---------------------------------------------------------------- run.sh's
# What both suites' run.sh share: the Debian packages and tools a run
# needs, the one-cluster-per-machine lock, and the end of a run.

# install_prerequisites [COMMAND...]: the runtime, CNI plugins, the busybox
# image's binary, etcd, openssl, jq, curl and each COMMAND (a Debian package
# of that name) from Debian; MinIO and helm (install-tools.sh).
install_prerequisites() {
  local pkgs=() c
  command -v containerd >/dev/null || pkgs+=(containerd)
  command -v runc >/dev/null || pkgs+=(runc)
  [ -x /usr/lib/cni/bridge ] || pkgs+=(containernetworking-plugins)
  dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || pkgs+=(busybox-static)
  command -v etcd >/dev/null || pkgs+=(etcd-server)
  for c in openssl jq curl "$@"; do command -v "$c" >/dev/null || pkgs+=("$c"); done
  if [ ${#pkgs[@]} -gt 0 ]; then
    log "apt-get install ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null ||
      { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null; }
  fi
  [ -x "$MINIO" ] && [ -x "$HOARD_CACHE/bin/helm" ] || "$(dirname "${BASH_SOURCE[0]}")/../install-tools.sh"
}

# take_cluster_lock: the machine's e2e lock on fd 8 (one cluster at a
# time), waiting up to an hour for another run to end.
take_cluster_lock() {
  mkdir -p "$K8S_CACHE"
  exec 8>"$K8S_CACHE/.cluster.lock"
  if ! flock -n 8; then
    log "another e2e run holds $K8S_CACHE/.cluster.lock (one cluster per machine): waiting for it, at most 1 hour"
    flock -w 3600 8 || die "another e2e run held $K8S_CACHE/.cluster.lock for an hour"
  fi
}

# show_failure NAMESPACE...: the logs of the pods of each NAMESPACE (of the
# containers before a restart too) into $RUN/logs, the cluster's pods, and
# the end of every log.
show_failure() {
  local ns p f
  if [ -f "$RUN/pids/kube-apiserver" ]; then
    for ns in "$@"; do
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
}

# finish_run NAMESPACE...: run.sh's EXIT trap: on failure show_failure
# NAMESPACE...; then teardown (run.sh's); $RUN removed after a pass (kept
# with HOARD_E2E_KEEP_LOGS=1); PASS or FAIL with the time since $total.
# Reads $passed (true once the tests passed).
finish_run() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  [ "$passed" = true ] || show_failure "$@"
  log "tearing down"
  local t=$SECONDS
  teardown
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
