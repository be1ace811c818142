# A Kubernetes cluster of one control plane and $MN_NODES kubelets on this
# one machine (sourced by run.sh). The control plane (etcd, API server,
# controller manager, scheduler) runs on the host, bound to the bridge
# address; each node (node-a, node-b, ...) is a test node made by
# hoard-nodes (tests/nodes): a network namespace on the bridge, a mount
# namespace of its own and a cgroup, in which its containerd and kubelet run.
#
# What differs from the single-node run (scripts/e2e/cluster.sh), and why:
#   - the API server reaches kubelets by InternalIP (the node's veth address,
#     served by a kubelet cert with that IP); no endpoint-reconciler trick;
#   - each node bind-mounts its own /var/lib/kubelet (rshared, for CSI
#     Bidirectional propagation), /var/log/pods and /var/log/containers (a
#     kubelet deletes logs of pods it does not know, so kubelets must not
#     share them), /var/lib/cni, and hoard's /run/hoard (rshared) and
#     /var/lib/hoard, so hostPath volumes are per node;
#   - containerd per node: own root, state, socket, runc root, pod netns
#     mounts under its state dir; kubelet per node: cgroupRoot = the node's
#     cgroup, node IP = its veth address;
#   - pods: CNI bridge per node with pod CIDR 10.92.<i>.0/24 and a default
#     route through the node; every node and the host route the other pod
#     CIDRs to their nodes, so pods reach each other, the nodes and the host
#     (MinIO, the API server). No kube-proxy and no DNS: Service IPs do not
#     work; pods that need the API server get KUBERNETES_SERVICE_HOST/PORT.
#
# Needs: RUN, NODES (the hoard-nodes binary), lib.sh sourced; sources
# ../k8s.sh (what both clusters share).

. "$(dirname "${BASH_SOURCE[0]}")/../k8s.sh"

MN_NODES=${MN_NODES:-3}
MN_PREFIX=hke                     # netns hke-node-a, veths hkev1.., cgroups /hke-node-a
MN_SUBNET=10.91.0.0/24            # host .1, node i .1i (hoard-nodes: the (10+i)-th address)
MN_HOST=10.91.0.1
MN_POD_NET=10.92                  # pod CIDR of node i: 10.92.i.0/24
MN_SVC_CIDR=10.93.0.0/24          # no kube-proxy: Service IPs do not work
MN_ETCD_PORT=22379                # Kubernetes' own etcd, on the host
MN_API_PORT=6443
API_HOST=$MN_HOST API_PORT=$MN_API_PORT ETCD_HOST=$MN_HOST ETCD_PORT=$MN_ETCD_PORT
MN_RUNTIME=/run/hoard-e2e-mn      # containerd state and sockets (short paths)
NSTATE=$RUN/nodes                 # hoard-nodes state dir
export KUBECONFIG=$RUN/admin.kubeconfig

# The hostPaths each node has of its own (see above).
MN_BINDS=(/var/lib/kubelet:shared /var/log/pods /var/log/containers /var/lib/cni /run/hoard:shared /var/lib/hoard)

nodes() { "$NODES" --state "$NSTATE" "$@"; }

node_name() { printf 'node-%s' "$(printf '%s' abcdefghi | cut -c"$1")"; }
node_ip() { printf '10.91.0.1%s' "$1"; }
node_names() { local i; for i in $(seq 1 "$MN_NODES"); do node_name "$i"; echo; done; }
node_index() { local i; for i in $(seq 1 "$MN_NODES"); do [ "$(node_name "$i")" = "$1" ] && { echo "$i"; return; }; done; return 1; }
node_sock() { echo "$MN_RUNTIME/$1/containerd.sock"; }
node_ctr() { local n=$1; shift; timeout 120 ctr --address "$(node_sock "$n")" --namespace k8s.io "$@"; }
node_crictl() { local n=$1; shift; timeout 60 "$CRICTL" --runtime-endpoint "unix://$(node_sock "$n")" --timeout 30s "$@"; }

# start_in NODE NAME CMD...: start, in NODE. Disowned: a node's processes
# die by hoard-nodes kill, which bash need not report.
start_in() { local n=$1 name=$2; shift 2; start "$name" "$NODES" --state "$NSTATE" exec "$n" -- "$@"; disown; }

pki() {
  local i n
  control_plane_pki hoard-e2e-mn-ca "IP:$MN_HOST,IP:${MN_SVC_CIDR%.0/24}.1,IP:127.0.0.1"
  for i in $(seq 1 "$MN_NODES"); do
    n=$(node_name "$i")
    cert "kubelet-$n" "system:node:$n" system:nodes "" clientAuth
    cert "kubelet-serving-$n" "$n" "" "DNS:$n,IP:$(node_ip "$i")" serverAuth
    kubeconfig "kubelet-$n"
  done
}

# make_nodes: the nodes (namespaces, bridge, cgroups), routes between their
# pod CIDRs, and each node's containerd and kubelet configuration.
make_nodes() {
  local binds=() b i j n
  for b in "${MN_BINDS[@]}"; do binds+=(--bind "$b"); done
  # shellcheck disable=SC2046
  # Not fd 8 (the e2e lock): the nodes' holders outlive a killed run.
  nodes create --prefix "$MN_PREFIX" --subnet "$MN_SUBNET" "${binds[@]}" $(node_names) >"$RUN/logs/nodes.log" 8>&-
  for i in $(seq 1 "$MN_NODES"); do
    n=$(node_name "$i")
    [ "$(nodes ip "$n")" = "$(node_ip "$i")" ] || die "hoard-nodes gave $n $(nodes ip "$n"), want $(node_ip "$i")"
    ip route add "$MN_POD_NET.$i.0/24" via "$(node_ip "$i")"   # host -> pods of node i
    for j in $(seq 1 "$MN_NODES"); do
      [ "$j" = "$i" ] || nodes exec "$n" -- ip route add "$MN_POD_NET.$j.0/24" via "$(node_ip "$j")"
    done
    node_config "$i"
  done
}

node_config() {
  local i=$1 n d s
  n=$(node_name "$i"); d=$NSTATE/$n; s=$MN_RUNTIME/$n
  mkdir -p "$s"
  cni_config "$d/cni" cni0 "$MN_POD_NET.$i.0/24" gateway
  containerd_config "$d/containerd.toml" "$d/containerd" "$s" "$s/containerd.sock" "$d/cni" "$s/runc"
  kubelet_config "$d/kubelet.yaml" "$(node_ip "$i")" "kubelet-serving-$n" "$s/containerd.sock" "/$MN_PREFIX-$n"
}

# node_up NODE: starts the node's containerd (importing the images the
# first time; the provisioner's also under its registry name) and kubelet.
node_up() {
  local n=$1 i d
  i=$(node_index "$n")
  d=$NSTATE/$n
  start_in "$n" "containerd-$n" containerd --config "$d/containerd.toml"
  wait_for 30 "containerd of $n" node_ctr "$n" version || { running "containerd-$n"; return 1; }
  if [ ! -f "$d/images-imported" ]; then
    local tar
    for tar in "${IMAGE_TARS[@]}"; do
      node_ctr "$n" images import --no-unpack=false "$tar" >/dev/null 2>"$RUN/logs/import-$n.err" ||
        { cat "$RUN/logs/import-$n.err" >&2; die "ctr images import $tar into $n"; }
    done
    node_ctr "$n" images tag "localhost/csi-provisioner:$PROVISIONER_VERSION" \
      "registry.k8s.io/sig-storage/csi-provisioner:$PROVISIONER_VERSION" >/dev/null
    touch "$d/images-imported"
  fi
  start_in "$n" "kubelet-$n" "$K8S_BIN/kubelet" --config="$d/kubelet.yaml" \
    --kubeconfig="$RUN/kubelet-$n.kubeconfig" --root-dir=/var/lib/kubelet \
    --hostname-override="$n" --node-ip="$(node_ip "$i")"
}

node_ready() {
  jsonpath_is True node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}'
}

wait_nodes_ready() {
  local n
  for n in "$@"; do
    wait_for 120 "node $n to be Ready" node_ready "$n" ||
      { kubectl describe node "$n" >&2 || true; running "kubelet-$n"; return 1; }
  done
}

cluster_up() {
  IMAGE_TARS=("$@")
  pki
  make_nodes            # the bridge first: the control plane listens on its address
  start_etcd
  start_control_plane --service-cluster-ip-range="$MN_SVC_CIDR" --kubelet-preferred-address-types=InternalIP
  local n
  for n in $(node_names); do node_up "$n"; done
  # shellcheck disable=SC2046
  wait_nodes_ready $(node_names)
}

# cluster_down: pods first (while node plugins can unpublish), then every
# node's processes, the nodes, the control plane.
cluster_down() {
  if [ -f "$RUN/pids/kube-apiserver" ] && [ -d "$NSTATE" ]; then
    delete_workload_pods
  fi
  if [ -d "$NSTATE" ]; then
    local n
    for n in $(nodes list 2>/dev/null | cut -d' ' -f1); do
      # Tasks that ignore SIGTERM: kill them while containerd runs, then
      # every process of the node (kubelet, containerd, shims, containers).
      if node_ctr "$n" version >/dev/null 2>&1; then
        for id in $(node_ctr "$n" tasks ls -q 2>/dev/null); do
          node_ctr "$n" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
        done
      fi
      nodes kill "$n" >/dev/null 2>&1 || true
    done
    nodes destroy || log "hoard-nodes destroy failed: see $NSTATE"
  fi
  local i
  for i in $(seq 1 9); do ip route del "$MN_POD_NET.$i.0/24" 2>/dev/null || true; done
  # The API server drains its watches for a minute on SIGTERM: 5 s is enough.
  for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$name" 5; done
  local m
  for m in $(mounts_under "$MN_RUNTIME"); do umount "$m" 2>/dev/null || umount -l "$m" || true; done
  rm -rf --one-file-system "$MN_RUNTIME"
}
