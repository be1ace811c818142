# What both e2e clusters (cluster.sh: one node on loopback; multinode/
# cluster.sh: kubelets in test nodes) share, sourced by each: starting and
# stopping processes, the PKI and kubeconfigs, etcd and the control plane,
# and the containerd, CNI and kubelet configuration files. Each cluster.sh
# says where the API server and etcd listen before calling these:
#
#   API_HOST, API_PORT    the API server's address (clients and kubelets)
#   ETCD_HOST, ETCD_PORT  Kubernetes' own etcd (the peer port is the next)
#
# Needs: RUN (a fresh directory), lib.sh sourced.

# Every call bounded: a hung component fails the run instead of stalling it.
kubectl() { timeout 120 "$K8S_BIN/kubectl" --request-timeout=30s "$@"; }

# start NAME CMD...: CMD in the background, output in $RUN/logs/NAME.log,
# pid in $RUN/pids/NAME. Not fd 8, run.sh's lock: a process left by a
# killed run must not hold it, or the next run could not stop it.
start() {
  local name=$1; shift
  mkdir -p "$RUN/logs" "$RUN/pids"
  "$@" >>"$RUN/logs/$name.log" 2>&1 8>&- </dev/null &
  echo $! >"$RUN/pids/$name"
}

# runs PID NAME: PID is alive and runs the binary NAME (pids get reused).
runs() {
  local exe
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  exe=${exe% (deleted)}
  alive "$1" && [ "${exe##*/}" = "$2" ]
}

# stop NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 15).
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

# running NAME: the process is alive; if not, its log's tail is printed.
running() {
  local pid; pid=$(cat "$RUN/pids/$1" 2>/dev/null)
  [ -n "$pid" ] && alive "$pid" && return 0
  log "$1 exited; the end of its log:"
  tail -n 30 "$RUN/logs/$1.log" >&2
  return 1
}

# mounts_under DIR...: mount points at or below DIRs, deepest first.
mounts_under() {
  local d
  for d in "$@"; do
    awk -v d="$d" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo
  done | sort -r -u
}

# delete_workload_pods: every pod outside hoard-system, first in a teardown
# while the node plugins can still unpublish their volumes.
delete_workload_pods() {
  local ns
  for ns in $(kubectl get namespaces -o name 2>/dev/null); do
    ns=${ns#namespace/}
    [ "$ns" = hoard-system ] && continue
    kubectl -n "$ns" delete pods --all --grace-period=1 --timeout=30s >/dev/null 2>&1 || true
  done
}

# ---------------------------------------------------------------- PKI

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

# kubeconfig NAME [CERT]: $RUN/NAME.kubeconfig with the client cert CERT
# (default NAME).
kubeconfig() {
  cat >"$RUN/$1.kubeconfig" <<EOC
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "https://$API_HOST:$API_PORT", certificate-authority: "$RUN/pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$RUN/pki/${2:-$1}.crt", client-key: "$RUN/pki/${2:-$1}.key"}
contexts:
- name: e2e
  context: {cluster: e2e, user: $1}
current-context: e2e
EOC
}

# control_plane_pki CA_NAME APISERVER_SANS: the CA, the control plane's
# certificates and kubeconfigs (admin, controller-manager, scheduler) and
# the service account key; the kubelets' are the caller's.
control_plane_pki() {
  local pki=$RUN/pki n
  mkdir -p "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" -subj "/CN=$1" 2>/dev/null
  cert apiserver kube-apiserver "" \
    "$2,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" serverAuth
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" clientAuth
  cert admin admin system:masters "" clientAuth
  cert controller-manager system:kube-controller-manager "" "" clientAuth
  cert scheduler system:kube-scheduler "" "" clientAuth
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  for n in admin controller-manager scheduler; do kubeconfig "$n"; done
}

# ---------------------------------------------------------------- control plane

start_etcd() {
  local peer=http://$ETCD_HOST:$((ETCD_PORT + 1))
  start etcd etcd --name e2e --data-dir "$RUN/etcd" \
    --listen-client-urls "http://$ETCD_HOST:$ETCD_PORT" --advertise-client-urls "http://$ETCD_HOST:$ETCD_PORT" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "e2e=$peer"
  wait_for 30 etcd http_ok "http://$ETCD_HOST:$ETCD_PORT/health" || { running etcd; return 1; }
}

# start_control_plane APISERVER_ARGS...: the API server (with the cluster's
# own arguments: service range, how it reaches kubelets), the controller
# manager and the scheduler, on API_HOST; waits until the API server is
# ready and the default service account exists.
start_control_plane() {
  local pki=$RUN/pki
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers="http://$ETCD_HOST:$ETCD_PORT" \
    --bind-address="$API_HOST" --advertise-address="$API_HOST" --secure-port="$API_PORT" \
    --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" --kubelet-certificate-authority="$pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --authorization-mode=Node,RBAC --allow-privileged=true --enable-priority-and-fairness=false "$@"
  wait_for 90 "the API server" kubectl get --raw /readyz || { running kube-apiserver; return 1; }
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$RUN/controller-manager.kubeconfig" --bind-address="$API_HOST" --leader-elect=false \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --use-service-account-credentials=true --controllers='*,-nodeipam,-cloud-node-lifecycle'
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$RUN/scheduler.kubeconfig" --bind-address="$API_HOST" --leader-elect=false
  wait_for 60 "the default service account" kubectl -n default get serviceaccount default ||
    { running kube-controller-manager; return 1; }
}

# ---------------------------------------------------------------- node configuration

# cni_config DIR BRIDGE SUBNET [gateway]: the pods' network in
# DIR/net.d (host-local addresses of SUBNET, kept in DIR/ipam) on bridge
# BRIDGE; "gateway": the bridge is the pods' default route (pods reach
# other nodes through it), else pods reach only their bridge.
cni_config() {
  local dir=$1 bridge=$2 subnet=$3 gw=false routes=""
  if [ "${4:-}" = gateway ]; then gw='true, "hairpinMode": true'; routes=', "routes": [{"dst": "0.0.0.0/0"}]'; fi
  mkdir -p "$dir/net.d" "$dir/ipam"
  cat >"$dir/net.d/10-hoard-e2e.conflist" <<EOC
{
  "cniVersion": "1.0.0",
  "name": "hoard-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": $gw, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$subnet"}]]$routes, "dataDir": "$dir/ipam"}},
    {"type": "loopback"}
  ]
}
EOC
}

# containerd_config FILE ROOT STATE SOCKET CNI_DIR [RUNC_ROOT]: containerd
# with the CRI plugin as the e2e needs it: the locally built sandbox image,
# negative OOM score adjustments refused (restrict_oom_score_adj), pods'
# network namespaces under its state dir (not the shared /run/netns, where
# other tests' namespaces live), Debian's CNI plugins, cni_config's network.
containerd_config() {
  local runc=""
  [ -z "${6:-}" ] || runc="
      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = \"$6\""
  cat >"$1" <<EOC
version = 2
root = "$2"
state = "$3"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$4"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:e2e"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"$runc
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$5/net.d"
EOC
}

# kubelet_config FILE ADDRESS SERVING_CERT SOCKET [CGROUP_ROOT]: a kubelet
# serving on ADDRESS with $RUN/pki/SERVING_CERT.{crt,key}, containerd on
# SOCKET, cgroupfs (no systemd), swap allowed, image GC off (the imported
# images cannot be pulled again).
kubelet_config() {
  cat >"$1" <<EOC
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs${5:+
cgroupRoot: $5}
failSwapOn: false
address: $2
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$RUN/pki/ca.crt"}
authorization: {mode: AlwaysAllow}
tlsCertFile: "$RUN/pki/$3.crt"
tlsPrivateKeyFile: "$RUN/pki/$3.key"
containerRuntimeEndpoint: "unix://$4"
imageServiceEndpoint: "unix://$4"
# Locally imported images cannot be pulled again.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
resolvConf: ""
syncFrequency: 10s
fileCheckFrequency: 5s
EOC
}
