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
# Needs: RUN (a fresh directory), lib.sh sourced.

E2E_ETCD_PORT=${E2E_ETCD_PORT:-22379}   # not 2379 (hoard dev), below the ephemeral port range
APISERVER_PORT=6443                       # overlay/kustomization.yaml names it too
NODE=$(hostname | tr '[:upper:]' '[:lower:]')
KUBELET_DIR=/var/lib/kubelet             # the manifests' hostPaths assume it
CONTAINERD_SOCK=/run/containerd/containerd.sock
CNI_BRIDGE=cni-hoard0
export KUBECONFIG=$RUN/admin.kubeconfig

# Every call bounded: a hung component fails the run instead of stalling it.
kubectl() { timeout 90 "$K8S_BIN/kubectl" --request-timeout=30s "$@"; }
# crictl reads a config file (a missing one is a warning on every call).
crictl() {
  [ -f "$RUN/crictl.yaml" ] || echo "runtime-endpoint: unix://$CONTAINERD_SOCK" >"$RUN/crictl.yaml"
  timeout 60 "$CRICTL" --config "$RUN/crictl.yaml" --runtime-endpoint "unix://$CONTAINERD_SOCK" --timeout 30s "$@"
}
ctr() { timeout 120 ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# start NAME CMD...: runs CMD in the background with its output in
# $RUN/logs/NAME.log and its pid in $RUN/pids/NAME.
start() {
  local name=$1; shift
  mkdir -p "$RUN/logs" "$RUN/pids"
  # Not fd 8, run.sh's lock: a process left by a killed run must not hold
  # it, or the next run could not stop it.
  "$@" >"$RUN/logs/$name.log" 2>&1 8>&- &
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
  local pid; pid=$(cat "$RUN/pids/$1")
  alive "$pid" && return 0
  log "$1 exited; the end of its log:"
  tail -n 30 "$RUN/logs/$1.log" >&2
  return 1
}

# cert NAME CN O SANS EKU: a key pair and a certificate signed by the CA.
cert() {
  local name=$1 cn=$2 o=$3 sans=$4 eku=$5 pki=$RUN/pki
  local subj="/CN=$cn"
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

# kubeconfig NAME: $RUN/NAME.kubeconfig with the client cert NAME.
kubeconfig() {
  cat >"$RUN/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "https://127.0.0.1:$APISERVER_PORT", certificate-authority: "$RUN/pki/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$RUN/pki/$1.crt", client-key: "$RUN/pki/$1.key"}
contexts:
- name: e2e
  context: {cluster: e2e, user: $1}
current-context: e2e
EOF
}

pki() {
  local pki=$RUN/pki
  mkdir -p "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" -subj "/CN=hoard-e2e-ca" 2>/dev/null
  cert apiserver kube-apiserver "" \
    "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" serverAuth
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" clientAuth
  cert admin admin system:masters "" clientAuth
  cert controller-manager system:kube-controller-manager "" "" clientAuth
  cert scheduler system:kube-scheduler "" "" clientAuth
  cert kubelet "system:node:$NODE" system:nodes "" clientAuth
  cert kubelet-serving "$NODE" "" "DNS:$NODE,DNS:localhost,IP:127.0.0.1" serverAuth
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  for c in admin controller-manager scheduler kubelet; do kubeconfig "$c"; done
}

# hostname_on_loopback: the API server reaches the kubelet by hostname
# (--kubelet-preferred-address-types=Hostname), which must be 127.0.0.1.
hostname_on_loopback() {
  if ! getent hosts "$NODE" | grep -q '^127\.0\.0\.1\b'; then
    log "mapping $NODE to 127.0.0.1 in /etc/hosts"
    echo "127.0.0.1 $NODE" >>/etc/hosts
  fi
}

start_etcd() {
  start etcd etcd --name e2e --data-dir "$RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$E2E_ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$E2E_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((E2E_ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((E2E_ETCD_PORT + 1))" \
    --initial-cluster "e2e=http://127.0.0.1:$((E2E_ETCD_PORT + 1))"
  wait_for 30 etcd http_ok "http://127.0.0.1:$E2E_ETCD_PORT/health" || { running etcd; return 1; }
}

start_control_plane() {
  local pki=$RUN/pki
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$E2E_ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --endpoint-reconciler-type=none --service-cluster-ip-range=10.0.0.0/24 \
    --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=Hostname \
    --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --authorization-mode=Node,RBAC --allow-privileged=true --enable-priority-and-fairness=false
  wait_for 90 "the API server" kubectl get --raw /readyz || { running kube-apiserver; return 1; }
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$RUN/controller-manager.kubeconfig" --bind-address=127.0.0.1 --leader-elect=false \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --use-service-account-credentials=true --controllers='*,-nodeipam,-cloud-node-lifecycle'
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$RUN/scheduler.kubeconfig" --bind-address=127.0.0.1 --leader-elect=false
  wait_for 60 "the default service account" kubectl -n default get serviceaccount default ||
    { running kube-controller-manager; return 1; }
}

start_containerd() {
  mkdir -p "$RUN/cni/net.d" "$RUN/cni/ipam"
  cat >"$RUN/cni/net.d/10-hoard-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "hoard-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": false, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "dataDir": "$RUN/cni/ipam"}},
    {"type": "loopback"}
  ]
}
EOF
  cat >"$RUN/containerd.toml" <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:e2e"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
EOF
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
  local pki=$RUN/pki
  # CSI node plugins need Bidirectional propagation, hence a shared mount;
  # / is private on these machines.
  mkdir -p "$KUBELET_DIR"
  if ! findmnt -n -o TARGET "$KUBELET_DIR" | grep -qx "$KUBELET_DIR"; then
    mount --bind "$KUBELET_DIR" "$KUBELET_DIR"
  fi
  mount --make-rshared "$KUBELET_DIR"
  cat >"$RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: AlwaysAllow}
tlsCertFile: "$pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$pki/kubelet-serving.key"
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
imageServiceEndpoint: "unix://$CONTAINERD_SOCK"
# Locally imported images cannot be pulled again.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
resolvConf: ""
syncFrequency: 10s
fileCheckFrequency: 5s
EOF
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
  start_control_plane
  start_containerd
  import_images "$@"
  start_kubelet
}

# mounts_under DIR...: mount points at or below DIRs, deepest first.
mounts_under() {
  local d
  for d in "$@"; do
    awk -v d="$d" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo
  done | sort -r -u
}

# cluster_down stops everything cluster_up started (those that did start),
# pods first: the kubelet deletes them, then crictl removes what is left.
cluster_down() {
  local pid
  if [ -f "$RUN/pids/kubelet" ] && [ -f "$RUN/pids/kube-apiserver" ]; then
    # Pods using volumes first, while the node plugin can still unpublish them.
    local ns
    for ns in $(kubectl get namespaces -o name 2>/dev/null); do
      ns=${ns#namespace/}
      [ "$ns" = hoard-system ] && continue
      kubectl -n "$ns" delete pods --all --grace-period=1 --timeout=30s >/dev/null 2>&1 || true
    done
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
