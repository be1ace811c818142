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
# Needs: RUN, NODES (the hoard-nodes binary), lib.sh sourced.

MN_NODES=${MN_NODES:-3}
MN_PREFIX=hke                     # netns hke-node-a, veths hkev1.., cgroups /hke-node-a
MN_SUBNET=10.91.0.0/24            # host .1, node i .1i (hoard-nodes: the (10+i)-th address)
MN_HOST=10.91.0.1
MN_POD_NET=10.92                  # pod CIDR of node i: 10.92.i.0/24
MN_SVC_CIDR=10.93.0.0/24          # no kube-proxy: Service IPs do not work
MN_ETCD_PORT=22379                # Kubernetes' own etcd, on the host
MN_API_PORT=6443
MN_RUNTIME=/run/hoard-e2e-mn      # containerd state and sockets (short paths)
NSTATE=$RUN/nodes                 # hoard-nodes state dir
export KUBECONFIG=$RUN/admin.kubeconfig

# The hostPaths each node has of its own (see above).
MN_BINDS=(/var/lib/kubelet:shared /var/log/pods /var/log/containers /var/lib/cni /run/hoard:shared /var/lib/hoard)

kubectl() { timeout 120 "$K8S_BIN/kubectl" --request-timeout=30s "$@"; }
nodes() { "$NODES" --state "$NSTATE" "$@"; }

node_name() { printf 'node-%s' "$(printf '%s' abcdefghi | cut -c"$1")"; }
node_ip() { printf '10.91.0.1%s' "$1"; }
node_names() { local i; for i in $(seq 1 "$MN_NODES"); do node_name "$i"; echo; done; }
node_index() { local i; for i in $(seq 1 "$MN_NODES"); do [ "$(node_name "$i")" = "$1" ] && { echo "$i"; return; }; done; return 1; }
node_sock() { echo "$MN_RUNTIME/$1/containerd.sock"; }
node_ctr() { local n=$1; shift; timeout 120 ctr --address "$(node_sock "$n")" --namespace k8s.io "$@"; }
node_crictl() { local n=$1; shift; timeout 60 "$CRICTL" --runtime-endpoint "unix://$(node_sock "$n")" --timeout 30s "$@"; }

# start NAME CMD...: CMD in the background, output in $RUN/logs/NAME.log,
# pid in $RUN/pids/NAME (fd 8, the cluster lock, is not inherited).
start() {
  local name=$1; shift
  mkdir -p "$RUN/logs" "$RUN/pids"
  "$@" >>"$RUN/logs/$name.log" 2>&1 8>&- </dev/null &
  echo $! >"$RUN/pids/$name"
}

# start_in NODE NAME CMD...: start, in NODE. Disowned: a node's processes
# die by hoard-nodes kill, which bash need not report.
start_in() { local n=$1 name=$2; shift 2; start "$name" "$NODES" --state "$NSTATE" exec "$n" -- "$@"; disown; }

# runs PID NAME: PID is alive and runs the binary NAME (pids get reused).
runs() {
  local exe
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  exe=${exe% (deleted)}
  alive "$1" && [ "${exe##*/}" = "$2" ]
}

# stop NAME [SECONDS]: SIGTERM, SIGKILL after SECONDS (default 15).
stop() {
  local name=$1 timeout=${2:-15} pid
  pid=$(cat "$RUN/pids/$name" 2>/dev/null) || return 0
  if runs "$pid" "$name"; then
    kill "$pid" 2>/dev/null || true
    if ! wait_for "$timeout" "$name to exit" eval "! alive $pid"; then
      kill -9 "$pid" 2>/dev/null || true
      wait_for 10 "$name to die" eval "! alive $pid" || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  rm -f "$RUN/pids/$name"
}

running() {
  local pid; pid=$(cat "$RUN/pids/$1" 2>/dev/null)
  [ -n "$pid" ] && alive "$pid" && return 0
  log "$1 exited; the end of its log:"
  tail -n 30 "$RUN/logs/$1.log" >&2
  return 1
}

# cert NAME CN O SANS EKU: a key pair and a certificate signed by the CA.
cert() {
  local name=$1 cn=$2 o=$3 sans=$4 eku=$5 pki=$RUN/pki subj="/CN=$2"
  [ -z "$o" ] || subj="/O=$o$subj"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$pki/$name.key" -out "$pki/$name.csr" -subj "$subj" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
}

# kubeconfig NAME [CERT]: $RUN/NAME.kubeconfig with the client cert CERT (default NAME).
kubeconfig() {
  cat >"$RUN/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "https://$MN_HOST:$MN_API_PORT", certificate-authority: "$RUN/pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$RUN/pki/${2:-$1}.crt", client-key: "$RUN/pki/${2:-$1}.key"}
contexts:
- name: e2e
  context: {cluster: e2e, user: $1}
current-context: e2e
EOF
}

pki() {
  local pki=$RUN/pki i n
  mkdir -p "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" -subj "/CN=hoard-e2e-mn-ca" 2>/dev/null
  cert apiserver kube-apiserver "" \
    "IP:$MN_HOST,IP:${MN_SVC_CIDR%.0/24}.1,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" serverAuth
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" clientAuth
  cert admin admin system:masters "" clientAuth
  cert controller-manager system:kube-controller-manager "" "" clientAuth
  cert scheduler system:kube-scheduler "" "" clientAuth
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  for n in admin controller-manager scheduler; do kubeconfig "$n"; done
  for i in $(seq 1 "$MN_NODES"); do
    n=$(node_name "$i")
    cert "kubelet-$n" "system:node:$n" system:nodes "" clientAuth
    cert "kubelet-serving-$n" "$n" "" "DNS:$n,IP:$(node_ip "$i")" serverAuth
    kubeconfig "kubelet-$n"
  done
}

start_control_plane() {
  local pki=$RUN/pki
  start etcd etcd --name e2e --data-dir "$RUN/etcd" \
    --listen-client-urls "http://$MN_HOST:$MN_ETCD_PORT" --advertise-client-urls "http://$MN_HOST:$MN_ETCD_PORT" \
    --listen-peer-urls "http://$MN_HOST:$((MN_ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://$MN_HOST:$((MN_ETCD_PORT + 1))" \
    --initial-cluster "e2e=http://$MN_HOST:$((MN_ETCD_PORT + 1))"
  wait_for 30 etcd http_ok "http://$MN_HOST:$MN_ETCD_PORT/health" || { running etcd; return 1; }
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers="http://$MN_HOST:$MN_ETCD_PORT" \
    --bind-address="$MN_HOST" --advertise-address="$MN_HOST" --secure-port="$MN_API_PORT" \
    --service-cluster-ip-range="$MN_SVC_CIDR" \
    --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --authorization-mode=Node,RBAC --allow-privileged=true --enable-priority-and-fairness=false
  wait_for 90 "the API server" kubectl get --raw /readyz || { running kube-apiserver; return 1; }
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$RUN/controller-manager.kubeconfig" --bind-address="$MN_HOST" --leader-elect=false \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --use-service-account-credentials=true --controllers='*,-nodeipam,-cloud-node-lifecycle'
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$RUN/scheduler.kubeconfig" --bind-address="$MN_HOST" --leader-elect=false
  wait_for 60 "the default service account" kubectl -n default get serviceaccount default ||
    { running kube-controller-manager; return 1; }
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
  mkdir -p "$d/cni/net.d" "$d/cni/ipam" "$s"
  cat >"$d/cni/net.d/10-hoard-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "hoard-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$MN_POD_NET.$i.0/24"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$d/cni/ipam"}},
    {"type": "loopback"}
  ]
}
EOF
  cat >"$d/containerd.toml" <<EOF
version = 2
root = "$d/containerd"
state = "$s"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$s/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:e2e"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$s/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni/net.d"
EOF
  cat >"$d/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /$MN_PREFIX-$n
failSwapOn: false
address: $(node_ip "$i")
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$RUN/pki/ca.crt"}
authorization: {mode: AlwaysAllow}
tlsCertFile: "$RUN/pki/kubelet-serving-$n.crt"
tlsPrivateKeyFile: "$RUN/pki/kubelet-serving-$n.key"
containerRuntimeEndpoint: "unix://$s/containerd.sock"
imageServiceEndpoint: "unix://$s/containerd.sock"
# Locally imported images cannot be pulled again.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
resolvConf: ""
syncFrequency: 10s
fileCheckFrequency: 5s
EOF
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
  start_control_plane
  local n
  for n in $(node_names); do node_up "$n"; done
  # shellcheck disable=SC2046
  wait_nodes_ready $(node_names)
}

# cluster_down: pods first (while node plugins can unpublish), then every
# node's processes, the nodes, the control plane.
cluster_down() {
  if [ -f "$RUN/pids/kube-apiserver" ] && [ -d "$NSTATE" ]; then
    local ns
    for ns in $(kubectl get namespaces -o name 2>/dev/null); do
      ns=${ns#namespace/}
      [ "$ns" = hoard-system ] && continue
      kubectl -n "$ns" delete pods --all --grace-period=1 --timeout=30s >/dev/null 2>&1 || true
    done
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

# mounts_under DIR...: mount points at or below DIRs, deepest first.
mounts_under() {
  local d
  for d in "$@"; do
    awk -v d="$d" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo
  done | sort -r -u
}
