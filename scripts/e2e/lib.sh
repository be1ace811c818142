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
