# The e2e test proper (sourced by run.sh once the cluster is up): MinIO with
# a bucket, an object of known SHA-256 and a small dataset, hoard installed
# with its Helm chart and scripts/e2e/values.yaml (the cluster cache on: a
# worker and the coordinator in the cluster), then volumes read by busybox
# pods through a real kubelet, and the chart uninstalled.
#
# Needs: RUN, HOARD_RUN (the node state dir's host path), lib.sh,
# cluster.sh and chart.sh sourced; sources minio.sh.

MINIO_HOST=127.0.0.1
. "$(dirname "${BASH_SOURCE[0]}")/minio.sh"
NS=hoard-e2e
OBJECT=blob.bin               # under data/ for the bucket volume, under each PV's prefix for the prefix one
POD_TIMEOUT=${E2E_POD_TIMEOUT:-120}

start_minio() {
  ports_free "$E2E_MINIO_PORT" $((E2E_MINIO_PORT + 1))
  minio_up
  head -c $((3 << 20 | 12345)) /dev/urandom >"$RUN/object"   # 3 MiB and a bit: several FUSE reads, a partial page
  DIGEST=$(sha256sum "$RUN/object" | cut -d' ' -f1)
  s3 PUT "$BUCKET/data/$OBJECT" -T "$RUN/object" >/dev/null
  log "MinIO on 127.0.0.1:$E2E_MINIO_PORT: s3://$BUCKET/data/$OBJECT, sha256 $DIGEST"
  put_dataset
}

# put_dataset: DATASET_FILES files of 1-5 MiB under data/train/ (the bucket
# volume's train/), their sha256sums in $RUN/train.sha256 as a pod sees them.
DATASET_FILES=${E2E_DATASET_FILES:-24}
put_dataset() {
  local i f size total=0
  mkdir -p "$RUN/train"
  for i in $(seq -w 1 "$DATASET_FILES"); do
    f=shard-$i.bin
    size=$(( (1 + 10#$i % 5) << 20 | 10#$i * 4099 ))
    head -c "$size" /dev/urandom >"$RUN/train/$f"
    s3 PUT "$BUCKET/data/train/$f" -T "$RUN/train/$f" >/dev/null
    total=$((total + size))
  done
  (cd "$RUN/train" && sha256sum shard-*.bin | sed 's#  #  /data/train/#') >"$RUN/train.sha256"
  DATASET_BYTES=$total
  rm -rf "$RUN/train"
  log "dataset: $DATASET_FILES files, $((total >> 20)) MiB under s3://$BUCKET/data/train/"
}

# ops.sh's settings (see there): the bucket volume's claim of
# test_cluster_cache, its StorageClass's chart-made Secret, reader-1.
OPS_NODE=$NODE
OPS_CLAIM=dataset
OPS_PREFIX=data
OPS_SECRET=hoard-e2e-bucket-s3
OPS_PRELOAD_SET="preload.jobs[0].storageClass=hoard-e2e-bucket,preload.jobs[0].source=s3://$BUCKET/data/warm/"
OPS_STATUS_POD=reader-1
# values_port SECTION KEY: KEY's port in values.yaml's top-level SECTION.
values_port() {
  awk -v s="$1:" -v k="$2:" '$0 == s {in_s = 1; next} /^[^ ]/ {in_s = 0} in_s && $1 == k {print $2; exit}' \
    "$(dirname "${BASH_SOURCE[0]}")/values.yaml"
}
COORD_ENDPOINTS=http://127.0.0.1:$(values_port coordinator clientPort)
# metrics_urls: every component's /metrics (values.yaml binds them to
# 127.0.0.1 on the host network); mounter_url: the mounter's.
metrics_urls() {
  local c
  for c in controller node mounter worker; do echo "http://127.0.0.1:$(values_port "$c" healthPort)/metrics"; done
  echo "http://127.0.0.1:$(values_port coordinator metricsPort)/metrics"
}
mounter_url() { echo "http://127.0.0.1:$(values_port mounter healthPort)/metrics"; }

# worker_metric NAME: the worker's counter NAME (/metrics on its health
# port).
worker_metric() {
  curl -sf --max-time 10 "http://127.0.0.1:$(values_port worker healthPort)/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {n += $2} END {printf "%d\n", n}'
}

# storage_values: the chart's StorageClasses (one of each provisioning
# mode, each with a Secret of MinIO's keys made by the chart), as a values
# file; and the Secret inline volumes name, in the pods' namespace. The
# worker has no credentials of its own: it reads with the volumes'.
storage_values() {
  kubectl create namespace "$NS" >/dev/null
  kubectl -n "$NS" create secret generic hoard-e2e-s3 \
    --from-literal=accessKeyID="$MINIO_USER" --from-literal=secretAccessKey="$MINIO_PASSWORD" >/dev/null
  local common="
    endpoint: http://127.0.0.1:$E2E_MINIO_PORT
    reclaimPolicy: Delete
    credentials: {accessKeyID: \"$MINIO_USER\", secretAccessKey: \"$MINIO_PASSWORD\"}"
  (umask 077; cat >"$RUN/storage-values.yaml" <<EOF
storageClasses:
  - name: hoard-e2e-bucket
    bucket: $BUCKET
    prefix: data
    provisioning: bucket$common
    parameters: {insecure: "true", pathStyle: "true", region: us-east-1}
  - name: hoard-e2e-prefix
    bucket: $BUCKET
    prefix: volumes
    provisioning: prefix$common
    parameters: {insecure: "true", pathStyle: "true", region: us-east-1, deletePolicy: delete}
node:
  # test_inline_volume's endpoint and bucket: inline volumes are off otherwise.
  inlineVolumeAllow: [http://127.0.0.1:$E2E_MINIO_PORT/$BUCKET]
EOF
  )
}

# deploy_hoard: the chart with the e2e values and the StorageClasses; every
# pod ready, the plugin registered with the kubelet.
deploy_hoard() {
  local t=$SECONDS
  storage_values
  chart_install hoard -f "$(dirname "${BASH_SOURCE[0]}")/values.yaml" -f "$RUN/storage-values.yaml"
  wait_for 180 "the hoard pods" hoard_ready ||
    { kubectl -n "$HOARD_NS" get pods -o wide >&2; kubectl -n "$HOARD_NS" describe pods >&2; return 1; }
  # The plugin registered itself with the kubelet (no node-driver-registrar).
  wait_for 60 "csi.hoard.dev in CSINode $NODE" \
    jsonpath_is csi.hoard.dev csinode "$NODE" -o jsonpath='{.spec.drivers[*].name}' ||
    { kubectl get csinode -o yaml >&2; return 1; }
  log "hoard installed with the chart in $((SECONDS - t))s: controller + external-provisioner, node plugin (registered), mounter, worker, coordinator"
  check_users
}

# check_users: the processes run as the chart says: the roles without
# privilege as the image's nonroot user (65532), the node plugin and the
# mounter as root.
check_users() {
  local comp container want pid uid got=""
  for spec in controller:hoard:65532 worker:worker:65532 coordinator:coordinator:65532 node:plugin:0 mounter:mounter:0; do
    IFS=: read -r comp container want <<<"$spec"
    pid=$(container_pid "$HOARD_NS" "$(hoard_pod "$comp")" "$container")
    uid=$(awk '/^Uid:/ {print $3}' "/proc/$pid/status")
    [ "$uid" = "$want" ] || die "$comp/$container (pid $pid) runs as uid $uid, want $want"
    got+=" $comp=$uid"
  done
  log "PASS users:$got"
}

# pvc NAME CLASS: a ReadOnlyMany claim, waited for until bound.
pvc() {
  kubectl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $1}
spec:
  storageClassName: $2
  accessModes: [ReadOnlyMany]
  resources: {requests: {storage: 1Gi}}
EOF
  wait_for "$POD_TIMEOUT" "PVC $1 to be bound" jsonpath_is Bound -n "$NS" pvc "$1" -o jsonpath='{.status.phase}' ||
    { kubectl -n "$NS" describe pvc "$1" >&2; return 1; }
}

# reader NAME FILE VOLUME_YAML: a busybox pod that prints FILE's sha256sum
# every second (errors too) with the volume at /data (HostToContainer, as
# deploy/kubernetes/examples.yaml recommends); waited for until running.
reader() {
  local name=$1 file=$2 volume=$3
  kubectl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: reader
      image: localhost/busybox:e2e
      imagePullPolicy: Never
      command: [sh, -c, "while true; do sha256sum /data/$file 2>&1; sleep 1; done"]
      volumeMounts:
        - {name: data, mountPath: /data, readOnly: true, mountPropagation: HostToContainer}
  volumes:
    - name: data
$volume
EOF
  wait_for "$POD_TIMEOUT" "pod $name to run" jsonpath_is Running -n "$NS" pod "$name" -o jsonpath='{.status.phase}' ||
    { kubectl -n "$NS" describe pod "$name" >&2; return 1; }
}

# reads_right POD [FILE]: sha256sum FILE (default /data/$OBJECT) in POD, by
# kubectl exec, is the object's digest; else the output is in $READ_OUT.
reads_right() {
  local pod=$1 file=${2:-/data/$OBJECT}
  READ_OUT=$(kubectl -n "$NS" exec "$pod" -- sha256sum "$file" 2>&1) && [ "${READ_OUT%% *}" = "$DIGEST" ]
}

# check_read POD [FILE]: reads_right, or the run fails.
check_read() {
  reads_right "$@" || die "$1: sha256sum ${2:-/data/$OBJECT}: $READ_OUT, want $DIGEST"
}

# check_log POD: every line the reader logged is the object's digest.
check_log() {
  local bad
  bad=$(kubectl -n "$NS" logs "$1" | grep -v "^$DIGEST " | head -n 5) || true
  [ -z "$bad" ] || die "$1 read something else: $bad"
}

# hoard_mounts: the cluster's hoard FUSE mounts (under the kubelet's dir or
# the node's state dir; other tests on the machine may have their own),
# "mount-ID device mount-point" a line, in mount order (a mount stacked on
# another comes after it).
hoard_mounts() {
  awk -v k="$KUBELET_DIR/" -v r="$HOARD_RUN/" '
    index($5, k) == 1 || index($5, r) == 1 {
      for (i = 7; i < NF; i++) if ($i == "-") {if ($(i+1) == "fuse.hoard") print $1, $3, $5; break}
    }' /proc/self/mountinfo
}

# staging_devices: the device of the top mount of each staging path (the
# kubelet's globalmount, or the node's own directory for inline volumes).
staging_devices() {
  hoard_mounts | awk -v eph="$HOARD_RUN/node/ephemeral/" '
    $3 ~ /\/globalmount$/ || index($3, eph) == 1 {top[$3] = $2}
    END {for (m in top) print m, top[m]}' | sort
}

no_hoard_mounts() { [ -z "$(hoard_mounts)" ]; }
no_pvs() { [ -z "$(kubectl get pv -o name)" ]; }

# container_pid NS POD [CONTAINER]: the host pid of POD's container (default
# the first).
container_pid() {
  local id filter='[0]'
  [ -z "${3:-}" ] || filter="[?(@.name==\"$3\")]"
  id=$(kubectl -n "$1" get pod "$2" -o jsonpath="{.status.containerStatuses$filter.containerID}")
  crictl inspect -o go-template --template '{{.info.pid}}' "${id#containerd://}"
}

# restarted POD N: POD's first container restarted more than N times and is ready.
restarted() {
  local got
  got=$(kubectl -n "$HOARD_NS" get pod "$1" -o jsonpath='{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].ready}')
  [ "${got% *}" -gt "$2" ] && [ "${got#* }" = true ]
}

test_bucket_volume() {
  pvc shared hoard-e2e-bucket
  reader reader-1 "$OBJECT" "      persistentVolumeClaim: {claimName: shared, readOnly: true}"
  check_read reader-1
  log "PASS bucket volume: reader-1 reads s3://$BUCKET/data/$OBJECT byte-exact"
}

# test_node_plugin_restart: kill -9 the node plugin; the pod keeps reading
# (the mounter serves the mount) and the mounts stay the same mounts; the
# restarted plugin takes over its state and publishes the staged volume to a
# new pod.
test_node_plugin_restart() {
  local pod pid before mounts_before
  pod=$(hoard_pod node)
  pid=$(container_pid "$HOARD_NS" "$pod")
  before=$(kubectl -n "$HOARD_NS" get pod "$pod" -o jsonpath='{.status.containerStatuses[0].restartCount}')
  mounts_before=$(hoard_mounts)
  kill -9 "$pid"
  wait_for 10 "the node plugin (pid $pid) to die" eval "! alive $pid"
  check_read reader-1
  wait_for 90 "the node plugin to restart" restarted "$pod" "$before" ||
    { kubectl -n "$HOARD_NS" describe pod "$pod" >&2; return 1; }
  sleep 3   # a few more reads of the loop, after the restart
  check_read reader-1
  check_log reader-1
  [ "$(hoard_mounts)" = "$mounts_before" ] ||
    die "the mounts changed across the plugin restart: before: $mounts_before; after: $(hoard_mounts)"
  reader reader-2 "$OBJECT" "      persistentVolumeClaim: {claimName: shared, readOnly: true}"
  check_read reader-2
  log "PASS node plugin kill -9: reads went on (no ENOTCONN), same mounts (same IDs); a new pod publishes the staged volume"
}

# test_mounter_restart: delete the mounter's pod (its DaemonSet is OnDelete,
# so a new one starts): its FUSE connections die; the plugin mounts each
# volume again (a new device on each staging path, the inline volume's
# included) and the running HostToContainer containers read again without a
# restart.
test_mounter_restart() {
  local pod devices_before
  pod=$(hoard_pod mounter)
  devices_before=$(staging_devices)
  [ "$(echo "$devices_before" | wc -l)" = 3 ] || die "want 3 staged volumes, have: $devices_before"
  kubectl -n "$HOARD_NS" delete pod "$pod" --grace-period=1 --timeout=60s >/dev/null
  wait_for 90 "a new mounter" hoard_ready
  # The plugin's restore loop (every 5 s) mounts each volume again: the same
  # paths, new devices. Waited for before reading: pages the kernel cached
  # of the old mounts can answer reads without any FUSE server.
  wait_for 60 "the plugin to mount the 3 volumes again" remounted ||
    die "staging mounts before the mounter restart: $devices_before; after: $(staging_devices) (want the same paths, new devices)"
  wait_for 60 "reader-1 to read again after the mounter restart" reads_right reader-1 ||
    die "reader-1 after the mounter restart: $READ_OUT"
  wait_for 30 "reader-inline to read again" reads_right reader-inline "/data/data/$OBJECT" ||
    die "reader-inline after the mounter restart: $READ_OUT"
  check_read reader-2
  check_read reader-prefix
  log "PASS mounter restart: the plugin mounted the 3 volumes again (the inline one too); running HostToContainer pods read again"
}

# remounted: each staging path of $devices_before (test_mounter_restart's)
# is mounted again, on a new device.
remounted() {
  local now; now=$(staging_devices)
  [ "$(echo "$now" | cut -d' ' -f1)" = "$(echo "$devices_before" | cut -d' ' -f1)" ] &&
    [ -z "$(comm -12 <(echo "$devices_before") <(echo "$now"))" ]
}

# test_prefix_volume: a PVC of its own prefix; an object put there is read
# by a pod; deleting the PVC deletes the prefix (deletePolicy delete).
test_prefix_volume() {
  pvc scratch hoard-e2e-prefix
  local pv prefix
  pv=$(kubectl -n "$NS" get pvc scratch -o jsonpath='{.spec.volumeName}')
  prefix=$(kubectl get pv "$pv" -o jsonpath='{.spec.csi.volumeAttributes.prefix}')
  case $prefix in volumes/"$NS"/scratch-*) ;; *) die "PV $pv has prefix '$prefix', want volumes/$NS/scratch-<hash>" ;; esac
  SCRATCH_PREFIX=${prefix%/}/
  s3 PUT "$BUCKET/$SCRATCH_PREFIX$OBJECT" -T "$RUN/object" >/dev/null
  reader reader-prefix "$OBJECT" "      persistentVolumeClaim: {claimName: scratch, readOnly: true}"
  check_read reader-prefix
  log "PASS prefix volume: reader-prefix reads s3://$BUCKET/$SCRATCH_PREFIX$OBJECT"
}

test_inline_volume() {
  reader reader-inline "data/$OBJECT" "      csi:
        driver: csi.hoard.dev
        readOnly: true
        nodePublishSecretRef: {name: hoard-e2e-s3}
        volumeAttributes:
          bucket: $BUCKET
          endpoint: http://127.0.0.1:$E2E_MINIO_PORT
          insecure: \"true\"
          pathStyle: \"true\"
          region: us-east-1"
  check_read reader-inline "/data/data/$OBJECT"
  log "PASS inline ephemeral volume: reader-inline reads the bucket"
}

# test_teardown: pods and claims deleted: volumes unpublished, unstaged,
# deleted (the prefix volume's objects too), no hoard mount and no state
# record left.
test_teardown() {
  kubectl -n "$NS" delete pods --all --grace-period=1 --timeout=90s >/dev/null
  kubectl -n "$NS" delete pvc --all --timeout=90s >/dev/null
  wait_for 90 "the PVs to be deleted (DeleteVolume)" no_pvs || { kubectl get pv -o wide >&2; return 1; }
  local left
  # The prefix's slashes encoded: curl signs the query as given, and MinIO
  # checks the signature of its canonical (encoded) form.
  local listing
  listing=$(s3 GET "$BUCKET?list-type=2&prefix=${SCRATCH_PREFIX//\//%2F}") && [[ $listing == *"<ListBucketResult"* ]] ||
    die "listing $SCRATCH_PREFIX after DeleteVolume failed: $listing"
  left=$(echo "$listing" | grep -o '<Key>[^<]*</Key>' || true)
  [ -z "$left" ] || die "DeleteVolume left objects under $SCRATCH_PREFIX: $left"
  [ "$(s3 GET "$BUCKET/data/$OBJECT" | sha256sum | cut -d' ' -f1)" = "$DIGEST" ] ||
    die "the bucket volume's data is gone or changed (provisioning: bucket must never delete)"
  wait_for 30 "the hoard mounts to go" no_hoard_mounts || { log "hoard mounts left:"; hoard_mounts >&2; return 1; }
  local records
  records=$(find "$HOARD_RUN/node" -name '*.json' 2>/dev/null)
  [ -z "$records" ] || die "the node plugin kept records of unstaged volumes: $records"
  log "PASS teardown: volumes unpublished, unstaged and deleted (the prefix volume's objects too); no hoard mount left"
}

# trainer NAME CLAIM: a training-shaped pod: reads every file of the
# dataset in a shuffled order, epoch after epoch (2), checking each file's
# sha256 in the first, and exits; its log says how long each epoch took.
trainer() {
  local name=$1 claim=$2
  kubectl -n "$NS" create configmap "$name-sums" --from-file=train.sha256="$RUN/train.sha256" >/dev/null
  kubectl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $name}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
    - name: train
      image: localhost/busybox:e2e
      imagePullPolicy: Never
      command:
        - sh
        - -c
        - |
          set -e
          t() { cut -d' ' -f1 /proc/uptime; }
          since() { awk -v a="\$1" -v b="\$(t)" 'BEGIN {printf "%.2f", b - a}'; }
          start=\$(t)
          sha256sum -c -s /sums/train.sha256
          echo "epoch 1 (sha256 of every file checked): \$(ls /data/train | wc -l) files in \$(since \$start) s"
          e2=\$(t)
          for f in \$(ls /data/train | shuf); do cat /data/train/\$f > /dev/null; done
          echo "epoch 2 (shuffled): \$(since \$e2) s"
          echo "total: \$(since \$start) s"
      volumeMounts:
        - {name: data, mountPath: /data, readOnly: true}
        - {name: sums, mountPath: /sums}
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: $claim, readOnly: true}
    - name: sums
      configMap: {name: $name-sums}
EOF
  wait_for 300 "$name to finish" pod_done "$name" || true
  local phase; phase=$(kubectl -n "$NS" get pod "$name" -o jsonpath='{.status.phase}')
  TRAIN_LOG=$(kubectl -n "$NS" logs "$name" 2>&1)
  [ "$phase" = Succeeded ] || { kubectl -n "$NS" describe pod "$name" >&2; die "$name: $phase: $TRAIN_LOG"; }
}

# pod_done NAME: the pod succeeded or failed.
pod_done() {
  case $(kubectl -n "$NS" get pod "$1" -o jsonpath='{.status.phase}') in Succeeded|Failed) return 0 ;; esac
  return 1
}

# seconds LOG LABEL: the seconds of LABEL's line ("total: 1.23 s").
seconds() { echo "$1" | awk -v l="$2" 'index($0, l ": ") == 1 {print $(NF - 1)}'; }

# test_cluster_cache: a training pod reads the dataset cold (MinIO serves
# GETs, the worker fetches); then with the mounter restarted (its memory
# tier gone) and the kernel's page cache dropped, a second training pod
# reads the same dataset from the worker: 0 GETs to MinIO.
test_cluster_cache() {
  pvc dataset hoard-e2e-bucket
  local g0 g1 g2 f0 f1 h1 h2
  g0=$(settled_gets); f0=$(worker_metric hoard_worker_fetched_bytes_total)
  trainer trainer-1 dataset
  g1=$(settled_gets); f1=$(worker_metric hoard_worker_fetched_bytes_total); h1=$(worker_metric hoard_worker_page_hits_total)
  local cold; cold=$(seconds "$TRAIN_LOG" total)
  log "trainer-1 (cold): $(echo "$TRAIN_LOG" | tr '\n' ';') MinIO GETs: $((g1 - g0)), worker fetched $(((f1 - f0) >> 20)) MiB"
  [ $((g1 - g0)) -gt 0 ] || die "the cold read made no GET to MinIO (the counter is not counting?)"
  kubectl -n "$NS" delete pod trainer-1 --grace-period=1 --timeout=60s >/dev/null
  # A fresh mounter: nothing of the dataset left in its memory.
  kubectl -n "$HOARD_NS" delete pod "$(hoard_pod mounter)" --grace-period=1 --timeout=60s >/dev/null
  wait_for 90 "a new mounter" hoard_ready mounter
  sync; echo 3 >/proc/sys/vm/drop_caches
  local heads1; heads1=$(minio_gets HeadObject)
  trainer trainer-2 dataset
  g2=$(settled_gets); h2=$(worker_metric hoard_worker_page_hits_total)
  local heads=$(($(minio_gets HeadObject) - heads1))
  local warm; warm=$(seconds "$TRAIN_LOG" total)
  log "trainer-2 (warm: worker cache, new mounter, page cache dropped): $(echo "$TRAIN_LOG" | tr '\n' ';') MinIO GETs: $((g2 - g1)) (HEADs: $heads, the workers' check of the volume's credentials), worker page hits: $((h2 - h1))"
  [ $((g2 - g1)) = 0 ] || die "trainer-2 made $((g2 - g1)) GETs to MinIO; want 0 (the dataset is in the worker's cache)"
  [ $((h2 - h1)) -gt 0 ] || die "trainer-2 read no page from the worker"
  kubectl -n "$NS" delete pod trainer-2 --grace-period=1 --timeout=60s >/dev/null
  # What an operator sees: hoard status in the mounter's pod, with its
  # client certificate (the workers speak mutual TLS).
  local st
  st=$(kubectl -n "$HOARD_NS" exec "$(hoard_pod mounter)" -- hoard status --tls-ca /etc/hoard/tls/ca.crt \
    --tls-cert /etc/hoard/tls/client.crt --tls-key /etc/hoard/tls/client.key 2>"$RUN/logs/hoard-status.err") ||
    die "hoard status: $st $(cat "$RUN/logs/hoard-status.err")"
  echo "$st" >"$RUN/logs/hoard-status.txt"
  [ "$(echo "$st" | head -n 1)" = "STATE OK" ] || die "hoard status in the mounter's pod: $st"
  log "hoard status: $(echo "$st" | awk '/^WORKERS/ {getline; getline; print; exit}' | tr -s ' ')"
  log "PASS cluster cache: $DATASET_FILES files, $((DATASET_BYTES >> 20)) MiB: cold ${cold}s with $((g1 - g0)) GETs; warm ${warm}s with 0 GETs ($((h2 - h1)) worker page hits)"
}

# test_upgrade: helm upgrade with a changed pod spec (log level) while
# pods read: every component but the mounter (OnDelete) is replaced; the
# reading pod never sees an error, the mounts stay the same mounts, and the
# volume still publishes to a new pod.
test_upgrade() {
  local t=$SECONDS mounts_before mounter_before node_before
  mounts_before=$(hoard_mounts)
  mounter_before=$(hoard_pod mounter)
  node_before=$(hoard_pod node)
  helm upgrade hoard "$CHART_DIR" --namespace "$HOARD_NS" --reuse-values --set logLevel=debug >"$RUN/logs/helm-upgrade.log" ||
    { cat "$RUN/logs/helm-upgrade.log" >&2; return 1; }
  wait_for 120 "the node plugin to be replaced" eval '[ "$(hoard_pod node)" != "$node_before" ]'
  wait_for 180 "the upgraded pods" upgraded ||
    { kubectl -n "$HOARD_NS" get pods -o wide >&2; return 1; }
  sleep 2
  check_read reader-1
  check_log reader-1
  [ "$(hoard_pod mounter)" = "$mounter_before" ] || die "helm upgrade replaced the mounter (it is OnDelete)"
  [ "$(hoard_mounts)" = "$mounts_before" ] ||
    die "the mounts changed across helm upgrade: before: $mounts_before; after: $(hoard_mounts)"
  reader reader-3 "$OBJECT" "      persistentVolumeClaim: {claimName: shared, readOnly: true}"
  check_read reader-3
  log "PASS helm upgrade in $((SECONDS - t))s: controller, node plugin, worker, coordinator replaced, mounter kept; reads went on, same mounts, a new pod publishes"
}

# upgraded: every pod but the mounter runs with --log-level=debug and is ready.
upgraded() {
  hoard_ready || return 1
  local c
  for c in controller node worker coordinator; do
    kubectl -n "$HOARD_NS" get pods -l "app.kubernetes.io/component=$c" -o jsonpath='{.items[*].spec.containers[0].args}' |
      grep -q -- '--log-level=debug' || return 1
    [ "$(kubectl -n "$HOARD_NS" get pods -l "app.kubernetes.io/component=$c" -o name | wc -l)" = 1 ] || return 1
  done
}

# test_uninstall: helm uninstall leaves no hoard pod, mount, node state
# record or CSIDriver.
test_uninstall() {
  local t=$SECONDS
  chart_uninstall hoard
  wait_for 60 "the hoard pods to go" eval '[ -z "$(kubectl -n "$HOARD_NS" get pods -o name)" ]' ||
    { kubectl -n "$HOARD_NS" get pods >&2; return 1; }
  ! kubectl get csidriver csi.hoard.dev >/dev/null 2>&1 || die "helm uninstall left the CSIDriver"
  [ -z "$(kubectl get storageclass -o name | grep hoard-e2e)" ] || die "helm uninstall left StorageClasses"
  no_hoard_mounts || die "hoard mounts left after helm uninstall: $(hoard_mounts)"
  local left; left=$(find "$HOARD_RUN" -name '*.json' 2>/dev/null)
  [ -z "$left" ] || die "node state left after helm uninstall: $left"
  log "PASS helm uninstall in $((SECONDS - t))s: no hoard pod, mount, state record, StorageClass or CSIDriver left"
}

run_tests() {
  start_minio
  deploy_hoard
  test_bucket_volume
  test_node_plugin_restart
  test_prefix_volume
  test_inline_volume
  test_upgrade
  test_mounter_restart
  test_cluster_cache
  run_ops_tests   # ops.sh: preload Job, dashboard metrics, hoard status
  test_teardown
  test_uninstall
}
