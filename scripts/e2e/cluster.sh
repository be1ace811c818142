# A single-node Kubernetes cluster on loopback, from the binaries build.sh
# made (sourced by run.sh). cluster_up starts etcd, the control plane,
# containerd and the kubelet with their state and logs in $RUN; cluster_down
# stops them all and removes their state except the caches (the Kubernetes
# binaries, containerd's image store in /var/lib/containerd).
#
# What a machine without systemd, registry or cloud needs, and why:
#   - the API server advertises 127.0.0.1, which needs
#     --endpoint-reconciler-type=none; there is no kube-proxy, so pods that
#     talk to it (the external-provisioner) use hostNetwork and 127.0.0.1;
#   - the kubelet refuses a loopback node IP, so the node's InternalIP is the
#     machine's; the API server reaches the kubelet by hostname
#     (--kubelet-preferred-address-types=Hostname), mapped to 127.0.0.1, with
#     a serving cert for it (kubectl logs/exec);
#   - containerd: pods' network namespaces under its own state dir, not
#     /run/netns, which `ip netns` makes a shared mount that other tests'
#     namespaces copy (their copies made unmounting ours fail with EBUSY,
#     and a sweep of /run/netns would take theirs);
#   - containerd: restrict_oom_score_adj (negative OOM score adjustments are
#     refused here), a locally built sandbox image, Debian's CNI plugins in
#     /usr/lib/cni, a bridge with host-local IPAM and no gateway;
#   - the kubelet: cgroupfs (no systemd), swap allowed, image GC off (the
#     imported images cannot be pulled again);
#   - / is a private mount here: /var/lib/kubelet is bind-mounted on itself
#     and made rshared, or Bidirectional propagation (CSI node plugins) fails;
#   - teardown kills containers with SIGKILL before removing the pods:
#     processes that ignore SIGTERM would stall it.
#
# Needs: RUN (a fresh directory), lib.sh sourced; sources k8s.sh (what
# both clusters share).

. "$(dirname "${BASH_SOURCE[0]}")/k8s.sh"

E2E_ETCD_PORT=${E2E_ETCD_PORT:-22379}   # not 2379 (hoard dev), below the ephemeral port range
APISERVER_PORT=6443                       # overlay/kustomization.yaml names it too
API_HOST=127.0.0.1 API_PORT=$APISERVER_PORT ETCD_HOST=127.0.0.1 ETCD_PORT=$E2E_ETCD_PORT
NODE=$(hostname | tr '[:upper:]' '[:lower:]')
KUBELET_DIR=/var/lib/kubelet             # the manifests' hostPaths assume it
CONTAINERD_SOCK=/run/containerd/containerd.sock
CNI_BRIDGE=cni-hoard0
export KUBECONFIG=$RUN/admin.kubeconfig

# crictl reads a config file (a missing one is a warning on every call).
crictl() {
  [ -f "$RUN/crictl.yaml" ] || echo "runtime-endpoint: unix://$CONTAINERD_SOCK" >"$RUN/crictl.yaml"
  timeout 60 "$CRICTL" --config "$RUN/crictl.yaml" --runtime-endpoint "unix://$CONTAINERD_SOCK" --timeout 30s "$@"
}
ctr() { timeout 120 ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

pki() {
  control_plane_pki hoard-e2e-ca "IP:127.0.0.1,IP:10.0.0.1"
  cert kubelet "system:node:$NODE" system:nodes "" clientAuth
  cert kubelet-serving "$NODE" "" "DNS:$NODE,DNS:localhost,IP:127.0.0.1" serverAuth
  kubeconfig kubelet
}

# hostname_on_loopback: the API server reaches the kubelet by hostname
# (--kubelet-preferred-address-types=Hostname), which must be 127.0.0.1.
hostname_on_loopback() {
  if ! getent hosts "$NODE" | grep -q '^127\.0\.0\.1\b'; then
    log "mapping $NODE to 127.0.0.1 in /etc/hosts"
    echo "127.0.0.1 $NODE" >>/etc/hosts
  fi
}

start_containerd() {
  cni_config "$RUN/cni" "$CNI_BRIDGE" 10.244.0.0/24
  containerd_config "$RUN/containerd.toml" /var/lib/containerd /run/containerd "$CONTAINERD_SOCK" "$RUN/cni"
  if [ -S "$CONTAINERD_SOCK" ] && ctr version >/dev/null 2>&1; then
    die "a containerd already serves $CONTAINERD_SOCK; stop it first"
  fi
  start containerd containerd --config "$RUN/containerd.toml"
  wait_for 30 containerd ctr version || { running containerd; return 1; }
}

import_images() {
  local tar
  for tar in "$@"; do
    ctr images import --no-unpack=false "$tar" >/dev/null 2>"$RUN/logs/import.err" ||
      { cat "$RUN/logs/import.err" >&2; die "ctr images import $tar"; }
  done
}

start_kubelet() {
  # CSI node plugins need Bidirectional propagation, hence a shared mount;
  # / is private on these machines.
  mkdir -p "$KUBELET_DIR"
  if ! findmnt -n -o TARGET "$KUBELET_DIR" | grep -qx "$KUBELET_DIR"; then
    mount --bind "$KUBELET_DIR" "$KUBELET_DIR"
  fi
  mount --make-rshared "$KUBELET_DIR"
  kubelet_config "$RUN/kubelet.yaml" 127.0.0.1 kubelet-serving "$CONTAINERD_SOCK"
  start kubelet "$K8S_BIN/kubelet" --config="$RUN/kubelet.yaml" --kubeconfig="$RUN/kubelet.kubeconfig" \
    --root-dir="$KUBELET_DIR" --hostname-override="$NODE"
  wait_for 60 "the kubelet's healthz" http_ok http://127.0.0.1:10248/healthz || { running kubelet; return 1; }
  wait_for 90 "node $NODE to be Ready" \
    jsonpath_is True node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' ||
    { kubectl describe node "$NODE" >&2 || true; running kubelet; return 1; }
}

# ports_free PORT...: nothing listens on 127.0.0.1:PORT (or on all addresses).
ports_free() {
  local port busy=()
  for port in "$@"; do
    if ss -Htln "sport = :$port" | grep -q .; then busy+=("$port"); fi
  done
  [ ${#busy[@]} -eq 0 ] || die "ports in use: ${busy[*]} (another cluster or test is running?)"
}

cluster_up() {
  # API server, kubelet (server, healthz), controller manager, scheduler, etcd.
  ports_free "$APISERVER_PORT" 10250 10248 10257 10259 "$E2E_ETCD_PORT" $((E2E_ETCD_PORT + 1))
  hostname_on_loopback
  pki
  start_etcd
  start_control_plane --endpoint-reconciler-type=none --service-cluster-ip-range=10.0.0.0/24 \
    --kubelet-preferred-address-types=Hostname
  start_containerd
  import_images "$@"
  start_kubelet
}

# cluster_down stops everything cluster_up started (those that did start),
# pods first: the kubelet deletes them, then crictl removes what is left.
cluster_down() {
  local pid
  if [ -f "$RUN/pids/kubelet" ] && [ -f "$RUN/pids/kube-apiserver" ]; then
    # Pods using volumes first, while the node plugin can still unpublish them.
    delete_workload_pods
    kubectl -n hoard-system delete daemonset,deployment --all --timeout=30s >/dev/null 2>&1 || true
    kubectl -n hoard-system delete pods --all --grace-period=1 --timeout=30s >/dev/null 2>&1 || true
  fi
  stop kubelet
  if [ -f "$RUN/pids/containerd" ] && ctr version >/dev/null 2>&1; then
    # Tasks that ignore SIGTERM stall a pod's removal: kill them first.
    for id in $(ctr tasks ls -q 2>/dev/null); do
      ctr tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    crictl rmp -fa >/dev/null 2>&1 || true
  fi
  stop containerd
  for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$name"; done
  # What is left mounted by pods and sandboxes (projected tokens, shm,
  # network namespaces, rootfs), then the kubelet's own bind mount.
  local m
  for m in $(mounts_under "$KUBELET_DIR" /run/containerd); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done
  ip link del "$CNI_BRIDGE" 2>/dev/null || true
  # The kubelet's cgroups (empty by now; rmdir refuses any that is not).
  find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} + 2>/dev/null || true
  if [ -z "$(mounts_under "$KUBELET_DIR")" ]; then
    rm -rf --one-file-system "$KUBELET_DIR"
  else
    log "mounts remain under $KUBELET_DIR; leaving it"
  fi
}
