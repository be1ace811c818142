# The multi-node cases (sourced by run.sh once the cluster is up): MinIO on
# the host's bridge address with data sets of known SHA-256, hoard installed
# with its Helm chart (values.yaml: the cluster cache, a worker per node),
# then busybox pods on different nodes reading the same data, and the
# operator's view (../ops.sh: preload Job, dashboard metrics, hoard
# status) as in the single-node suite. Each step
# prints its time and what MinIO served during it (GetObject, HeadObject,
# ListObjectsV2 requests and bytes sent), and what each node's worker
# fetched.
#
# Needs: RUN, NODES, lib.sh, cluster.sh and ../chart.sh sourced; sources
# ../minio.sh.

MINIO_HOST=$MN_HOST
. "$(dirname "${BASH_SOURCE[0]}")/../minio.sh"
NS=hoard-e2e
POD_TIMEOUT=${E2E_POD_TIMEOUT:-180}
WORKER_HEALTH_PORT=7071   # the workers' /metrics without TLS (their data port 7070 wants mTLS)
COORD_ENDPOINTS=http://10.91.0.11:2379   # the coordinator on node-a (values.yaml)
here_mn=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# dataset NAME PREFIX FILES MIB_MIN MIB_SPREAD: FILES random files under
# PREFIX in the bucket, of MIB_MIN to MIB_MIN+MIB_SPREAD-1 MiB plus 300-363
# KiB (so that every file ends in a partial page of at least 300 KiB: a
# page fetched twice would show in the bytes MinIO sent). Writes
# $RUN/data/NAME.sha256 ("digest  /mnt/path" lines, the path as a pod sees
# it under MNT=/data or /model) and sets SIZE_<NAME> to the total bytes.
dataset() {
  local name=$1 prefix=$2 files=$3 min=$4 spread=$5 mnt=$6 i f size total=0
  mkdir -p "$RUN/data/$name"
  : >"$RUN/data/$name.sha256"
  for i in $(seq -w 0 $((files - 1))); do
    f=$RUN/data/$name/f$i.bin
    size=$(( (min + 10#$i % spread) << 20 | (300 + 10#$i % 64) << 10 ))
    head -c "$size" /dev/urandom >"$f"
    s3 PUT "$BUCKET/$prefix/f$i.bin" -T "$f" >/dev/null
    echo "$(sha256sum "$f" | cut -d' ' -f1)  $mnt/${prefix#*/}/f$i.bin" >>"$RUN/data/$name.sha256"
    total=$((total + size))
    rm -f "$f"
  done
  printf -v "SIZE_$name" %s "$total"
  log "data set $name: $files files, $((total >> 20)) MiB under s3://$BUCKET/$prefix/"
}

make_data() {
  dataset train datasets/train 40 1 3 /data    # the training set (case 1)
  dataset shards datasets/shards 30 1 3 /data  # read while node-c is lost (case 3)
  dataset more datasets/more 24 1 3 /data      # read while the coordinator restarts (case 4)
  dataset one models/one 2 72 1 /model         # 2 shards of 72 MiB: 2 chunks each (64 MiB routing unit)
  dataset three models/three 2 72 1 /model
  dataset roll datasets/roll 24 1 3 /data      # read during helm upgrade (case 6)
}

# ops.sh's settings (see there): the datasets claim, read on node-a; the
# preload Job given its source, endpoint and Secret (the StorageClasses are
# not the chart's here).
OPS_NODE=node-a
OPS_CLAIM=datasets
OPS_PREFIX=datasets
OPS_SECRET=hoard-e2e-s3
OPS_PRELOAD_SET="preload.jobs[0].source=s3://$BUCKET/datasets/warm/,preload.jobs[0].endpoint=$MINIO_URL,preload.jobs[0].existingSecret=hoard-e2e-s3,preload.jobs[0].region=us-east-1,preload.jobs[0].pathStyle=true"
OPS_STATUS_POD=warm-reader
# metrics_urls: every component's /metrics at the chart's default ports (a
# worker, mounter and node plugin on each node; the controller; the
# coordinator); mounter_url NODE: NODE's mounter's.
metrics_urls() {
  local n ip port
  for n in $(node_names); do
    ip=$(node_ip "$(node_index "$n")")
    for port in "$WORKER_HEALTH_PORT" 9810 9809; do echo "http://$ip:$port/metrics"; done
  done
  n=$(kubectl -n "$HOARD_NS" get pods -l app.kubernetes.io/component=controller -o jsonpath='{.items[0].spec.nodeName}')
  echo "http://$(node_ip "$(node_index "$n")"):9808/metrics"
  echo "${COORD_ENDPOINTS%:*}:9812/metrics"
}
mounter_url() { echo "http://$(node_ip "$(node_index "$1")"):9810/metrics"; }

# ---------------------------------------------------------------- counters

# minio_counts: "GetObject HeadObject ListObjectsV2 sent_bytes" so far.
minio_counts() {
  curl -sf --max-time 10 "$MINIO_URL/minio/metrics/v3/api/requests" | awk '
    /^minio_api_requests_total\{/ {
      if ($0 ~ /name="GetObject"/) g += $2; else if ($0 ~ /name="HeadObject"/) h += $2; else if ($0 ~ /name="ListObjectsV2"/) l += $2 }
    /^minio_api_requests_traffic_sent_bytes\{/ {s += $2}
    END {printf "%d %d %d %.0f\n", g, h, l, s}'
}

# worker_metric NODE NAME: NODE's worker's metric NAME (summed over its
# labels; 0 if the worker does not answer); worker_fetched NODE: the bytes
# it fetched from the bucket so far.
worker_metric() {
  { curl -sf --max-time 5 "http://$(node_ip "$(node_index "$1")"):$WORKER_HEALTH_PORT/metrics" 2>/dev/null || true; } |
    awk -v m="$2" '$1 == m || index($1, m "{") == 1 {v += $2} END {printf "%.0f\n", v}'
}
worker_fetched() { worker_metric "$1" hoard_worker_fetched_bytes_total; }

# step NAME: starts a step (its time and counters); step_end prints them and
# sets D_GET D_HEAD D_LIST D_SENT (deltas) and D_FETCHED_<node> (bytes each
# node's worker fetched from the bucket), and appends a row to $RUN/steps.
STEP_NAME="" STEP_T0=0 STEP_COUNTS="" STEP_FETCHED=()
step() {
  STEP_NAME=$1
  STEP_T0=$(date +%s.%N)
  STEP_COUNTS=$(minio_counts)
  local n; STEP_FETCHED=()
  for n in $(node_names); do STEP_FETCHED+=("$(worker_fetched "$n")"); done
  log "STEP $STEP_NAME"
}
step_end() {
  local t1 secs g h l s now i n per=""
  t1=$(date +%s.%N)
  secs=$(awk -v a="$STEP_T0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
  read -r g h l s <<<"$STEP_COUNTS"
  now=$(minio_counts)
  read -r D_GET D_HEAD D_LIST D_SENT <<<"$(awk -v now="$now" -v g="$g" -v h="$h" -v l="$l" -v s="$s" \
    'BEGIN {split(now, a, " "); printf "%d %d %d %.0f\n", a[1]-g, a[2]-h, a[3]-l, a[4]-s}')"
  i=0
  for n in $(node_names); do
    local f; f=$(worker_fetched "$n")
    if [ "$f" -ge "${STEP_FETCHED[$i]}" ]; then
      f=$((f - STEP_FETCHED[i]))
      per+=" ${n#node-}=$((f >> 20))"
    else
      per+=" ${n#node-}=restarted"   # its counters started again at 0
      f=0
    fi
    printf -v "D_FETCHED_${n#node-}" %s "$f"
    i=$((i + 1))
  done
  log "STEP $STEP_NAME: ${secs}s; MinIO: GetObject +$D_GET, HeadObject +$D_HEAD, ListObjectsV2 +$D_LIST, sent $(mib "$D_SENT") MiB; workers fetched (MiB):$per"
  printf '%-64s %7s %6s %6s %6s %9s   %s\n' "$STEP_NAME" "$secs" "$D_GET" "$D_HEAD" "$D_LIST" "$(mib "$D_SENT")" "$per" >>"$RUN/steps"
}
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }

# fetched_once WHAT BYTES: MinIO sent BYTES in the step, give or take its
# listings (< 256 KiB); every file ends in a partial page of >= 300 KiB, so
# a page fetched twice would show.
fetched_once() {
  [ "$D_SENT" -ge "$2" ] && [ "$D_SENT" -lt $(($2 + (256 << 10))) ] ||
    die "$1: MinIO sent $D_SENT bytes, want $2 (+ listings < 256 KiB): a chunk fetched twice, or not at all"
}

# ---------------------------------------------------------------- hoard

# mn_hoard_ready: every hoard pod runs and is ready: a node plugin, a
# mounter and a worker on each node, the controller and the coordinator.
mn_hoard_ready() {
  hoard_ready || return 1
  local c
  for c in node mounter worker; do
    [ "$(kubectl -n "$HOARD_NS" get pods -l "app.kubernetes.io/component=$c" -o name | wc -l)" = "$MN_NODES" ] || return 1
  done
}

# hoard_status: hoard status of the cache cluster, as a client of it (the
# chart's client certificate: the workers' data port wants mTLS).
hoard_status() {
  if [ ! -f "$RUN/tls/client.key" ]; then
    mkdir -p "$RUN/tls"
    local k
    for k in ca.crt client.crt client.key; do
      kubectl -n "$HOARD_NS" get secret hoard-tls -o jsonpath="{.data.${k//./\\.}}" | base64 -d >"$RUN/tls/$k"
    done
  fi
  timeout 20 "$HOARD_BIN" status --etcd "$COORD_ENDPOINTS" \
    --tls-ca "$RUN/tls/ca.crt" --tls-cert "$RUN/tls/client.crt" --tls-key "$RUN/tls/client.key" 2>/dev/null
}

# workers_alive N: hoard status counts N alive workers.
workers_alive() {
  local n
  n=$(hoard_status | sed -n 's/.* registered, \([0-9]*\) alive.*/\1/p')
  [ "${n:-0}" -ge "$1" ]
}

deploy_hoard() {
  local n
  kubectl create namespace "$HOARD_NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n "$HOARD_NS" create secret generic hoard-e2e-worker-s3 \
    --from-literal=accessKeyID="$MINIO_USER" --from-literal=secretAccessKey="$MINIO_PASSWORD" >/dev/null
  kubectl -n "$HOARD_NS" create secret generic hoard-e2e-s3 \
    --from-literal=accessKeyID="$MINIO_USER" --from-literal=secretAccessKey="$MINIO_PASSWORD" >/dev/null
  chart_install hoard -f "$here_mn/values.yaml"
  wait_for 180 "the hoard pods on $MN_NODES nodes" mn_hoard_ready ||
    { kubectl -n "$HOARD_NS" get pods -o wide >&2; kubectl -n "$HOARD_NS" describe pods | tail -60 >&2; return 1; }
  for n in $(node_names); do
    wait_for 60 "csi.hoard.dev in CSINode $n" \
      jsonpath_is csi.hoard.dev csinode "$n" -o jsonpath='{.spec.drivers[*].name}' || return 1
  done
  wait_for 60 "$MN_NODES workers alive in the coordinator" workers_alive "$MN_NODES" ||
    { hoard_status >&2; return 1; }
  hoard_status | sed 's/^/    /' >&2
  log "hoard installed with its chart: controller, coordinator (node-a), and on each of $MN_NODES nodes a node plugin, a mounter and a worker"
}

# storage: the test namespace, its Secret, a StorageClass per prefix
# (datasets, models; provisioning: bucket, read-only), their claims, and
# the reader scripts and manifests as a ConfigMap.
storage() {
  kubectl create namespace "$NS" >/dev/null
  kubectl -n "$NS" create secret generic hoard-e2e-s3 \
    --from-literal=accessKeyID="$MINIO_USER" --from-literal=secretAccessKey="$MINIO_PASSWORD" >/dev/null
  local p
  for p in datasets models; do
    kubectl apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hoard-e2e-$p}
provisioner: csi.hoard.dev
reclaimPolicy: Delete
parameters:
  bucket: $BUCKET
  prefix: $p
  provisioning: bucket
  endpoint: $MINIO_URL
  insecure: "true"
  pathStyle: "true"
  region: us-east-1
  csi.storage.k8s.io/provisioner-secret-name: hoard-e2e-s3
  csi.storage.k8s.io/provisioner-secret-namespace: hoard-system
  csi.storage.k8s.io/node-stage-secret-name: hoard-e2e-s3
  csi.storage.k8s.io/node-stage-secret-namespace: hoard-system
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $p, namespace: $NS}
spec:
  storageClassName: hoard-e2e-$p
  accessModes: [ReadOnlyMany]
  resources: {requests: {storage: 1Gi}}
EOF
  done
  for p in datasets models; do
    wait_for "$POD_TIMEOUT" "PVC $p to be bound" jsonpath_is Bound -n "$NS" pvc "$p" -o jsonpath='{.status.phase}' ||
      { kubectl -n "$NS" describe pvc "$p" >&2; return 1; }
  done
  local args=()
  for p in "$here_mn"/pods/*.sh "$RUN"/data/*.sha256; do args+=(--from-file="$p"); done
  kubectl -n "$NS" create configmap scripts "${args[@]}" >/dev/null
}

# ---------------------------------------------------------------- pods

# pod_yaml KIND NAME NODE CLAIM MOUNT COMMAND [REPLICAS]: a busybox reader
# with CLAIM at MOUNT (read-only, HostToContainer) and the scripts at
# /scripts. KIND: Pod (restartPolicy Never), Job, or Deployment (REPLICAS
# spread over nodes by anti-affinity, required unless ANTI_AFFINITY=preferred;
# NODE ignored).
pod_yaml() {
  local kind=$1 name=$2 node=$3 claim=$4 mnt=$5 cmd=$6 replicas=${7:-1}
  local spec="    terminationGracePeriodSeconds: 1
    restartPolicy: $([ "$kind" = Deployment ] && echo Always || echo Never)"
  if [ "$kind" = Deployment ] && [ "${ANTI_AFFINITY:-required}" = preferred ]; then
    spec+="
    affinity:
      podAntiAffinity:
        preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              labelSelector: {matchLabels: {app: $name}}
              topologyKey: kubernetes.io/hostname"
  elif [ "$kind" = Deployment ]; then
    spec+="
    affinity:
      podAntiAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: $name}}
            topologyKey: kubernetes.io/hostname"
  elif [ -n "$node" ]; then
    spec+="
    nodeSelector: {kubernetes.io/hostname: $node}"
  fi
  spec+="
    containers:
      - name: reader
        image: localhost/busybox:e2e
        imagePullPolicy: Never
        command: [sh, -c, $(printf '%s' "$cmd" | jq -Rs .)]
        volumeMounts:
          - {name: data, mountPath: $mnt, readOnly: true, mountPropagation: HostToContainer}
          - {name: scripts, mountPath: /scripts}
    volumes:
      - name: data
        persistentVolumeClaim: {claimName: $claim, readOnly: true}
      - name: scripts
        configMap: {name: scripts}"
  case $kind in
    Pod) printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: %s, labels: {app: %s}}\nspec:\n%s\n' \
      "$name" "$NS" "$name" "$(sed 's/^  //' <<<"$spec")" ;;
    Job) printf 'apiVersion: batch/v1\nkind: Job\nmetadata: {name: %s, namespace: %s}\nspec:\n  backoffLimit: 0\n  template:\n    metadata: {labels: {app: %s}}\n    spec:\n%s\n' \
      "$name" "$NS" "$name" "$(sed 's/^/  /' <<<"$spec")" ;;
    Deployment) printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: %s, namespace: %s}\nspec:\n  replicas: %s\n  selector: {matchLabels: {app: %s}}\n  template:\n    metadata: {labels: {app: %s}}\n    spec:\n%s\n' \
      "$name" "$NS" "$replicas" "$name" "$name" "$(sed 's/^/  /' <<<"$spec")" ;;
  esac
}

apply_reader() { pod_yaml "$@" | kubectl apply -f - >/dev/null; }

pod_phase_is() { jsonpath_is "$2" -n "$NS" pod "$1" -o jsonpath='{.status.phase}'; }

# wait_succeeded POD [SECONDS]: the pod ran to its end with status 0.
wait_succeeded() {
  local pod=$1 deadline=$((SECONDS + ${2:-$POD_TIMEOUT})) phase
  while [ "$SECONDS" -lt "$deadline" ]; do
    phase=$(kubectl -n "$NS" get pod "$pod" -o jsonpath='{.status.phase}' 2>/dev/null)
    case $phase in
      Succeeded) return 0 ;;
      Failed) kubectl -n "$NS" logs "$pod" >&2; die "pod $pod failed" ;;
    esac
    sleep 1
  done
  kubectl -n "$NS" describe pod "$pod" | tail -30 >&2
  kubectl -n "$NS" logs "$pod" >&2 || true
  die "pod $pod did not finish in time"
}

job_pod() { kubectl -n "$NS" get pods -l "app=$1" -o jsonpath='{.items[0].metadata.name}'; }

# pod_log POD: the pod's log, indented, on stderr.
show_log() { kubectl -n "$NS" logs "$1" | sed "s/^/    $1: /" >&2; }

# epochs_clean POD: every epoch the pod logged read every file right.
epochs_clean() {
  local bad
  bad=$(kubectl -n "$NS" logs "$1" | awk '/^epoch/ && !/ failed=0 /' | head -3)
  [ -z "$bad" ] || die "$1: $bad"
}

# seconds_of POD: the seconds of the pod's first epoch or load.
seconds_of() { kubectl -n "$NS" logs "$1" | awk -F'seconds=' '/seconds=/ {split($2, a, " "); print a[1]; exit}'; }

# mounts_in NODE: the hoard FUSE mounts in the node's mount namespace.
hoard_mounts_in() {
  nodes exec "$1" -- cat /proc/self/mountinfo |
    awk '{for (i = 7; i < NF; i++) if ($i == "-") {if ($(i+1) == "fuse.hoard") print $5; break}}'
}

# hoard_pods_on NODE: "pod restarts ready" of each hoard pod on NODE.
hoard_pods_on() {
  kubectl -n "$HOARD_NS" get pods --field-selector "spec.nodeName=$1" -o json |
    jq -r '.items[] | "\(.metadata.name) \([.status.containerStatuses[]?.restartCount] | add // 0) \([.status.containerStatuses[]?.ready] | all)"'
}

# restarted_since BEFORE: every pod of BEFORE (hoard_pods_on lines) has
# restarted since, and is ready.
restarted_since() {
  local now pod count ready
  now=$(hoard_pods_on "$(kubectl -n "$HOARD_NS" get pod "${1%% *}" -o jsonpath='{.spec.nodeName}')")
  while read -r pod count ready; do
    grep -q "^$pod [0-9]* true$" <<<"$now" || return 1
    [ "$(grep "^$pod " <<<"$now" | cut -d' ' -f2)" -gt "$count" ] || return 1
  done <<<"$1"
}

# ---------------------------------------------------------------- cases

# Case 1: a training-shaped Job on node-a (4 readers, shuffled, 2 epochs,
# sha256 of every file) reads the training set; a pod on node-b reads it
# with 0 GETs to the bucket: across both, every chunk was fetched once.
case_dataset_across_nodes() {
  step "train: Job on node-a, 2 epochs (cold)"
  apply_reader Job train-a node-a datasets /data "sh /scripts/epoch.sh /scripts/train.sha256 4 2"
  wait_for 30 "the Job's pod" job_pod train-a
  local pod; pod=$(job_pod train-a)
  wait_succeeded "$pod"
  step_end
  show_log "$pod"; epochs_clean "$pod"
  fetched_once "train on node-a" "$SIZE_train"
  step "train: pod on node-b, 1 epoch"
  apply_reader Pod read-train-b node-b datasets /data "sh /scripts/epoch.sh /scripts/train.sha256 4 1"
  wait_succeeded read-train-b
  step_end
  show_log read-train-b; epochs_clean read-train-b
  [ "$D_GET" = 0 ] || die "node-b's read of the training set made $D_GET GETs to the bucket, want 0"
  log "PASS training set: Job on node-a $(seconds_of "$pod")s cold; node-b $(seconds_of read-train-b)s with 0 GETs; every chunk fetched from the bucket once ($(mib "$SIZE_train") MiB)"
}

# Case 2: a read-only model volume: one replica alone loads model one; a
# Deployment of 3 replicas, one per node, loads model three (same size) at
# once. Each chunk is fetched once either way.
case_model_replicas() {
  local pods p t1 n nodes_used
  step "model: 1 replica alone (cold)"
  apply_reader Deployment model-one "" models /model "sh /scripts/load.sh /scripts/one.sha256" 1
  wait_for "$POD_TIMEOUT" "model-one to load" model_loaded model-one 1 || { model_debug model-one; return 1; }
  step_end
  fetched_once "model one" "$SIZE_one"
  p=$(kubectl -n "$NS" get pods -l app=model-one -o jsonpath='{.items[0].metadata.name}')
  t1=$(seconds_of "$p")
  show_log "$p"
  step "model: 3 replicas on 3 nodes at once (cold)"
  apply_reader Deployment model-three "" models /model "sh /scripts/load.sh /scripts/three.sha256" 3
  wait_for "$POD_TIMEOUT" "model-three to load on 3 nodes" model_loaded model-three 3 || { model_debug model-three; return 1; }
  step_end
  fetched_once "model three, 3 replicas" "$SIZE_three"
  pods=$(kubectl -n "$NS" get pods -l app=model-three -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.nodeName}{"\n"}{end}')
  nodes_used=$(awk '{print $2}' <<<"$pods" | sort -u | wc -l)
  [ "$nodes_used" = 3 ] || die "model-three's replicas are on $nodes_used nodes, want 3: $pods"
  local times=""
  while read -r p n; do
    show_log "$p"
    times+=" $n=$(seconds_of "$p")s"
  done <<<"$pods"
  log "PASS model volume: 1 replica alone ${t1}s; 3 replicas on 3 nodes at once:$times; each chunk fetched once ($(mib "$SIZE_three") MiB for 3 replicas)"
  kubectl -n "$NS" delete deployment model-one model-three --timeout=60s >/dev/null
}

# model_loaded APP N: N pods of APP logged "loaded ... failed=0".
model_loaded() {
  local p c=0
  for p in $(kubectl -n "$NS" get pods -l "app=$1" -o jsonpath='{.items[*].metadata.name}'); do
    kubectl -n "$NS" logs "$p" 2>/dev/null | grep -q '^loaded .* failed=0 ' && c=$((c + 1))
    if kubectl -n "$NS" logs "$p" 2>/dev/null | grep '^loaded' | grep -vq ' failed=0 '; then
      show_log "$p"; die "$p loaded wrong bytes"
    fi
  done
  [ "$c" = "$2" ]
}
model_debug() {
  kubectl -n "$NS" get pods -o wide >&2
  local p
  for p in $(kubectl -n "$NS" get pods -l "app=$1" -o jsonpath='{.items[*].metadata.name}'); do
    kubectl -n "$NS" describe pod "$p" | tail -15 >&2; show_log "$p" || true
  done
}

# Case 3: node-c (kubelet, containerd, its pods: worker, mounter, node
# plugin) killed while pods on node-a and node-b read the
# shards: no failed read, no wrong byte; the bucket is read again only for
# chunks node-c's worker owned; node-c comes back and its worker serves its
# chunks again from its disk.
case_node_lost() {
  step "shards: pod on node-c reads them (cold)"
  apply_reader Pod read-shards-c node-c datasets /data "sh /scripts/epoch.sh /scripts/shards.sha256 4 1"
  wait_succeeded read-shards-c
  step_end
  show_log read-shards-c; epochs_clean read-shards-c
  fetched_once "shards on node-c" "$SIZE_shards"
  local owned_c=$D_FETCHED_c
  log "node-c's worker owns $(mib "$owned_c") MiB of the $(mib "$SIZE_shards") MiB (a: $(mib "$D_FETCHED_a"), b: $(mib "$D_FETCHED_b"))"
  [ "$owned_c" -gt 0 ] || die "node-c's worker fetched nothing: routing did not spread the chunks"

  step "shards: node-c killed while node-a and node-b read"
  # Paced (0.2 s between files), so that node-c dies in the middle of the
  # first epoch, the one that reads through hoard (later ones hit the
  # kernel's page cache).
  apply_reader Pod loop-shards-a node-a datasets /data "sh /scripts/epoch.sh /scripts/shards.sha256 2 3 0.2"
  apply_reader Pod loop-shards-b node-b datasets /data "sh /scripts/epoch.sh /scripts/shards.sha256 2 3 0.2"
  wait_for "$POD_TIMEOUT" "the readers to start" eval "pod_phase_is loop-shards-a Running && pod_phase_is loop-shards-b Running"
  sleep 1
  local pods_c; pods_c=$(hoard_pods_on node-c)
  local killed; killed=$(nodes kill node-c)
  log "$killed (kubelet, containerd, shims, worker, mounter, node plugin)"
  wait_succeeded loop-shards-a
  wait_succeeded loop-shards-b
  step_end
  show_log loop-shards-a; show_log loop-shards-b
  epochs_clean loop-shards-a; epochs_clean loop-shards-b
  [ "$D_SENT" -lt $((owned_c + (256 << 10))) ] ||
    die "with node-c lost the bucket sent $D_SENT bytes, more than node-c owned ($owned_c)"
  log "PASS node lost: 0 failed reads, 0 wrong bytes on node-a and node-b; the bucket re-sent $(mib "$D_SENT") MiB, node-c owned $(mib "$owned_c") MiB"

  step "shards: node-c back (kubelet and containerd restarted)"
  node_up node-c
  wait_nodes_ready node-c
  # Statuses from before the kill say "ready" until the kubelet reports
  # again: wait for each pod's containers to have restarted.
  wait_for 180 "hoard pods on node-c to restart" restarted_since "$pods_c" ||
    { echo "before: $pods_c" >&2; hoard_pods_on node-c >&2; kubectl -n "$HOARD_NS" get pods -o wide >&2; return 1; }
  wait_for 60 "$MN_NODES workers alive" workers_alive "$MN_NODES" || { hoard_status >&2; return 1; }
  step_end
  step "shards: pod on node-c reads them again"
  local hits0; hits0=$(worker_metric node-c hoard_worker_page_hits_total)
  apply_reader Pod read-shards-c2 node-c datasets /data "sh /scripts/epoch.sh /scripts/shards.sha256 4 1"
  wait_succeeded read-shards-c2
  step_end
  show_log read-shards-c2; epochs_clean read-shards-c2
  local hits; hits=$(( $(worker_metric node-c hoard_worker_page_hits_total) - hits0 ))
  [ "$D_GET" = 0 ] || die "node-c's second read made $D_GET GETs, want 0"
  [ "$hits" -gt 0 ] || die "node-c's worker served no page from its disk after its return"
  log "PASS node-c back: its worker serves again ($hits pages from its disk), 0 GETs"
}

# Case 4: the coordinator killed (its pod force-deleted) while pods on
# node-a and node-b read: reads go on on the last membership view; the
# StatefulSet starts it again and every worker is alive in it again.
case_coordinator() {
  step "more: the coordinator killed and restarted during reads"
  apply_reader Pod loop-more-a node-a datasets /data "sh /scripts/epoch.sh /scripts/more.sha256 2 3 0.5"
  apply_reader Pod loop-more-b node-b datasets /data "sh /scripts/epoch.sh /scripts/more.sha256 2 3 0.5"
  wait_for "$POD_TIMEOUT" "the readers to start" eval "pod_phase_is loop-more-a Running && pod_phase_is loop-more-b Running"
  sleep 1
  local pod uid
  pod=$(hoard_pod coordinator)
  uid=$(kubectl -n "$HOARD_NS" get pod "$pod" -o jsonpath='{.metadata.uid}')
  kubectl -n "$HOARD_NS" delete pod "$pod" --grace-period=0 --force >/dev/null 2>&1
  log "coordinator $pod killed (force-deleted)"
  wait_for 120 "a new coordinator" coordinator_replaced "$pod" "$uid" ||
    { kubectl -n "$HOARD_NS" get pods -o wide >&2; return 1; }
  log "coordinator back"
  wait_succeeded loop-more-a
  wait_succeeded loop-more-b
  wait_for 60 "$MN_NODES workers alive again" workers_alive "$MN_NODES" ||
    { hoard_status >&2; return 1; }
  step_end
  show_log loop-more-a; show_log loop-more-b
  epochs_clean loop-more-a; epochs_clean loop-more-b
  fetched_once "more, with the coordinator down" "$SIZE_more"
  log "PASS coordinator: reads went on while it was down and restarted; each chunk fetched once; all workers alive in it again"
}

# coordinator_replaced POD UID: POD is another pod than UID now, and ready.
coordinator_replaced() {
  [ "$(kubectl -n "$HOARD_NS" get pod "$1" -o jsonpath='{.metadata.uid}' 2>/dev/null)" != "$2" ] && hoard_ready coordinator
}

# Case 5: node-b drained: its reader moves to another node and reads there;
# nothing of hoard's volumes is left mounted on node-b, and no node state.
case_drain() {
  kubectl -n "$NS" delete pods --all --grace-period=1 --timeout=90s >/dev/null
  step "drain: node-b drained under a 3-replica reader"
  # Preferred anti-affinity: required would leave the moved pod Pending.
  ANTI_AFFINITY=preferred apply_reader Deployment drain-readers "" datasets /data \
    "sh /scripts/epoch.sh /scripts/train.sha256 2 1 && exec sleep 3600" 3
  wait_for "$POD_TIMEOUT" "3 readers" deployment_epochs drain-readers 3 || { model_debug drain-readers; return 1; }
  local before; before=$(hoard_mounts_in node-b | wc -l)
  [ "$before" -gt 0 ] || die "no hoard mount on node-b before the drain"
  kubectl drain node-b --ignore-daemonsets --delete-emptydir-data --grace-period=5 --timeout=120s >"$RUN/logs/drain.log" 2>&1 ||
    { cat "$RUN/logs/drain.log" >&2; die "kubectl drain node-b"; }
  wait_for 60 "node-b to unstage its hoard volumes" eval '[ -z "$(hoard_mounts_in node-b)" ]' ||
    die "hoard mounts left on node-b after the drain: $(hoard_mounts_in node-b)"
  wait_for "$POD_TIMEOUT" "3 readers again, none on node-b" deployment_epochs drain-readers 3 node-b || { model_debug drain-readers; return 1; }
  local records; records=$(nodes exec node-b -- find /run/hoard/node -name '*.json' 2>/dev/null || true)
  [ -z "$records" ] || die "node-b's plugin kept records of unstaged volumes: $records"
  step_end
  kubectl uncordon node-b >/dev/null
  kubectl -n "$NS" delete deployment drain-readers --timeout=60s >/dev/null
  kubectl -n "$NS" delete pods --all --grace-period=1 --timeout=90s >/dev/null
  log "PASS drain: node-b's reader moved and read there; node-b had $before hoard mounts, 0 after; no state records"
}

# deployment_epochs APP N [NOT_NODE]: N pods of APP (none on NOT_NODE) logged a clean epoch.
deployment_epochs() {
  local p c=0 node
  for p in $(kubectl -n "$NS" get pods -l "app=$1" -o jsonpath='{.items[*].metadata.name}'); do
    node=$(kubectl -n "$NS" get pod "$p" -o jsonpath='{.spec.nodeName}')
    [ -n "${3:-}" ] && [ "$node" = "$3" ] && continue
    kubectl -n "$NS" logs "$p" 2>/dev/null | grep -q '^epoch 1: .* failed=0 ' && c=$((c + 1))
  done
  [ "$c" = "$2" ]
}

# Case 6: helm upgrade to a new image tag while pods on node-a and node-b
# read: node plugins, workers, controller and coordinator roll to it, the
# mounters (OnDelete) stay, the hoard mounts on every node are the same
# mounts, no read fails.
case_upgrade() {
  local n before=() mounters
  for n in $(node_names); do
    node_ctr "$n" images tag localhost/hoard:e2e localhost/hoard:e2e-next >/dev/null
  done
  step "roll: helm upgrade to image tag e2e-next during reads"
  # The readers stay up after their epochs, so that their volumes stay
  # staged and published until the mounts are compared.
  apply_reader Pod loop-roll-a node-a datasets /data "sh /scripts/epoch.sh /scripts/roll.sha256 2 3 0.5; exec sleep 3600"
  apply_reader Pod loop-roll-b node-b datasets /data "sh /scripts/epoch.sh /scripts/roll.sha256 2 3 0.5; exec sleep 3600"
  wait_for "$POD_TIMEOUT" "the readers to start" eval "pod_phase_is loop-roll-a Running && pod_phase_is loop-roll-b Running"
  for n in $(node_names); do before+=("$(hoard_mount_ids_in "$n")"); done
  mounters=$(kubectl -n "$HOARD_NS" get pods -l app.kubernetes.io/component=mounter -o jsonpath='{.items[*].metadata.uid}')
  helm upgrade hoard "$CHART_DIR" --namespace "$HOARD_NS" --reuse-values --set image.tag=e2e-next \
    >"$RUN/logs/helm-upgrade.log" || { cat "$RUN/logs/helm-upgrade.log" >&2; return 1; }
  wait_for 240 "every rolling pod on tag e2e-next" rolled_to e2e-next ||
    { kubectl -n "$HOARD_NS" get pods -o wide >&2; return 1; }
  wait_for "$POD_TIMEOUT" "loop-roll-a's 3 epochs" epochs_done loop-roll-a 3
  wait_for "$POD_TIMEOUT" "loop-roll-b's 3 epochs" epochs_done loop-roll-b 3
  step_end
  show_log loop-roll-a; show_log loop-roll-b
  epochs_clean loop-roll-a; epochs_clean loop-roll-b
  [ "$(kubectl -n "$HOARD_NS" get pods -l app.kubernetes.io/component=mounter -o jsonpath='{.items[*].metadata.uid}')" = "$mounters" ] ||
    die "helm upgrade replaced a mounter (OnDelete)"
  local i=0
  for n in $(node_names); do
    [ "$(hoard_mount_ids_in "$n")" = "${before[$i]}" ] ||
      die "the hoard mounts on $n changed across helm upgrade: ${before[$i]} -> $(hoard_mount_ids_in "$n")"
    i=$((i + 1))
  done
  kubectl -n "$NS" delete pod loop-roll-a loop-roll-b --grace-period=1 --timeout=60s >/dev/null
  log "PASS helm upgrade: node plugins, workers, controller and coordinator on e2e-next, mounters kept, the same hoard mounts on every node, 0 failed reads"
}

# epochs_done POD N: POD logged N epochs.
epochs_done() { [ "$(kubectl -n "$NS" logs "$1" 2>/dev/null | grep -c '^epoch ')" -ge "$2" ]; }

# rolled_to TAG: every pod but the mounters runs image TAG and is ready.
rolled_to() {
  mn_hoard_ready || return 1
  ! kubectl -n "$HOARD_NS" get pods -l 'app.kubernetes.io/component!=mounter' \
    -o jsonpath='{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | grep -v ":$1\$" | grep -q .
}

# hoard_mount_ids_in NODE: "mount-ID mount-point" of the node's hoard mounts.
hoard_mount_ids_in() {
  nodes exec "$1" -- cat /proc/self/mountinfo |
    awk '{for (i = 7; i < NF; i++) if ($i == "-") {if ($(i+1) == "fuse.hoard") print $1, $5; break}}' | sort
}

# The end: pods and claims deleted: no hoard mount, no state record on any node.
case_teardown() {
  step "teardown: pods and claims deleted"
  kubectl -n "$NS" delete pods,jobs,deployments --all --grace-period=1 --timeout=90s >/dev/null
  kubectl -n "$NS" delete pvc --all --timeout=90s >/dev/null
  wait_for 90 "the PVs to be deleted" eval '[ -z "$(kubectl get pv -o name)" ]' || { kubectl get pv >&2; return 1; }
  local n
  for n in $(node_names); do
    wait_for 60 "hoard mounts on $n to go" eval '[ -z "$(hoard_mounts_in '"$n"')" ]' ||
      die "hoard mounts left on $n: $(hoard_mounts_in "$n")"
    [ -z "$(nodes exec "$n" -- find /run/hoard/node -name '*.json' 2>/dev/null || true)" ] || die "state records left on $n"
  done
  step_end
  log "PASS teardown: no hoard mount and no state record on any node"
}

# cost: CPU seconds and memory of each node (its cgroup: kubelet,
# containerd, pods) and of the host's processes.
cost() {
  log "cost of the cluster (CPU seconds since start, resident memory now, peak memory incl. page cache):"
  nodes usage | sed 's/^/    /' >&2
  local name pid total_rss=0
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler minio; do
    pid=$(cat "$RUN/pids/$name" 2>/dev/null) || continue
    alive "$pid" || continue
    local rss cpu
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    cpu=$(awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); printf "%.1f", ($12 + $13) / hz}' "/proc/$pid/stat")
    printf '    %s cpu=%ss rss=%dMiB\n' "$name" "$cpu" "$((rss >> 10))" >&2
  done
}

print_steps() {
  {
    printf '\n%-64s %7s %6s %6s %6s %9s   %s\n' step seconds GET HEAD LIST "sent MiB" "workers fetched MiB"
    cat "$RUN/steps"
  } >&2
}

run_tests() {
  minio_up
  make_data
  deploy_hoard
  storage
  case_dataset_across_nodes
  case_model_replicas
  case_node_lost
  case_coordinator
  case_drain
  case_upgrade
  step "ops: preload Job, dashboard metrics, hoard status"
  run_ops_tests   # ../ops.sh, as in the single-node suite
  step_end
  cost
  case_teardown
  print_steps
}
