# The e2e test proper (sourced by run.sh once the cluster is up): MinIO with
# a bucket and an object of known SHA-256, hoard deployed with the e2e
# overlay, then volumes read by busybox pods through a real kubelet.
#
# Needs: RUN, HOARD_RUN (the node state dir's host path), lib.sh and
# cluster.sh sourced.

E2E_MINIO_PORT=${E2E_MINIO_PORT:-29000}   # below the ephemeral port range
MINIO_USER=hoard-e2e
MINIO_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
BUCKET=hoard-e2e
NS=hoard-e2e
OBJECT=blob.bin               # under data/ for the bucket volume, under each PV's prefix for the prefix one
POD_TIMEOUT=${E2E_POD_TIMEOUT:-120}

# s3 METHOD PATH [curl args...]: a signed request to MinIO.
s3() {
  local method=$1 path=$2; shift 2
  curl -sS --max-time 60 --fail-with-body -X "$method" --aws-sigv4 "aws:amz:us-east-1:s3" --user "$MINIO_USER:$MINIO_PASSWORD" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "http://127.0.0.1:$E2E_MINIO_PORT/$path"
}

start_minio() {
  ports_free "$E2E_MINIO_PORT" $((E2E_MINIO_PORT + 1))
  [ -x "$MINIO" ] || die "no MinIO at $MINIO: run make tools (scripts/install-tools.sh)"
  MINIO_ROOT_USER=$MINIO_USER MINIO_ROOT_PASSWORD=$MINIO_PASSWORD MINIO_BROWSER=off \
    start minio "$MINIO" server --quiet --address "127.0.0.1:$E2E_MINIO_PORT" \
    --console-address "127.0.0.1:$((E2E_MINIO_PORT + 1))" "$RUN/minio"
  wait_for 60 MinIO http_ok "http://127.0.0.1:$E2E_MINIO_PORT/minio/health/live" || { running minio; return 1; }
  s3 PUT "$BUCKET" >/dev/null
  head -c $((3 << 20 | 12345)) /dev/urandom >"$RUN/object"   # 3 MiB and a bit: several FUSE reads, a partial page
  DIGEST=$(sha256sum "$RUN/object" | cut -d' ' -f1)
  s3 PUT "$BUCKET/data/$OBJECT" -T "$RUN/object" >/dev/null
  log "MinIO on 127.0.0.1:$E2E_MINIO_PORT: s3://$BUCKET/data/$OBJECT, sha256 $DIGEST"
}

# storage: the Secret (for the StorageClasses and for inline volumes) and
# two StorageClasses, one of each provisioning mode.
storage() {
  local ns
  kubectl create namespace "$NS" >/dev/null
  for ns in hoard-system "$NS"; do
    kubectl -n "$ns" create secret generic hoard-e2e-s3 \
      --from-literal=accessKeyID="$MINIO_USER" --from-literal=secretAccessKey="$MINIO_PASSWORD" >/dev/null
  done
  local common="
  endpoint: http://127.0.0.1:$E2E_MINIO_PORT
  insecure: \"true\"
  pathStyle: \"true\"
  region: us-east-1
  csi.storage.k8s.io/provisioner-secret-name: hoard-e2e-s3
  csi.storage.k8s.io/provisioner-secret-namespace: hoard-system
  csi.storage.k8s.io/node-stage-secret-name: hoard-e2e-s3
  csi.storage.k8s.io/node-stage-secret-namespace: hoard-system"
  kubectl apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hoard-e2e-bucket}
provisioner: csi.hoard.dev
reclaimPolicy: Delete
parameters:
  bucket: $BUCKET
  prefix: data
  provisioning: bucket$common
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hoard-e2e-prefix}
provisioner: csi.hoard.dev
reclaimPolicy: Delete
parameters:
  bucket: $BUCKET
  prefix: volumes
  provisioning: prefix
  deletePolicy: delete$common
EOF
}

# hoard_ready: the controller (both containers), the node plugin and the
# mounter run and are ready.
hoard_ready() {
  local app
  for app in hoard-controller hoard-node hoard-mounter; do
    kubectl -n hoard-system get pods -l "app=$app" \
      -o jsonpath='{range .items[*]}{.status.containerStatuses[*].ready}{"\n"}{end}' |
      grep -Eqx 'true( true)*' || return 1
  done
}

deploy_hoard() {
  kubectl apply -k "$(dirname "${BASH_SOURCE[0]}")/overlay" >"$RUN/logs/apply.log"
  wait_for 120 "the hoard pods" hoard_ready ||
    { kubectl -n hoard-system get pods -o wide >&2; kubectl -n hoard-system describe pods >&2; return 1; }
  # The plugin registered itself with the kubelet (no node-driver-registrar).
  wait_for 60 "csi.hoard.dev in CSINode $NODE" \
    jsonpath_is csi.hoard.dev csinode "$NODE" -o jsonpath='{.spec.drivers[*].name}' ||
    { kubectl get csinode -o yaml >&2; return 1; }
  log "hoard deployed: controller + external-provisioner, node plugin (registered), mounter"
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

# container_pid NS POD: the host pid of POD's first container.
container_pid() {
  local id
  id=$(kubectl -n "$1" get pod "$2" -o jsonpath='{.status.containerStatuses[0].containerID}')
  crictl inspect -o go-template --template '{{.info.pid}}' "${id#containerd://}"
}

# restarted POD N: POD's first container restarted more than N times and is ready.
restarted() {
  local got
  got=$(kubectl -n hoard-system get pod "$1" -o jsonpath='{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].ready}')
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
  pod=$(kubectl -n hoard-system get pods -l app=hoard-node -o jsonpath='{.items[0].metadata.name}')
  pid=$(container_pid hoard-system "$pod")
  before=$(kubectl -n hoard-system get pod "$pod" -o jsonpath='{.status.containerStatuses[0].restartCount}')
  mounts_before=$(hoard_mounts)
  kill -9 "$pid"
  wait_for 10 "the node plugin (pid $pid) to die" eval "! alive $pid"
  check_read reader-1
  wait_for 90 "the node plugin to restart" restarted "$pod" "$before" ||
    { kubectl -n hoard-system describe pod "$pod" >&2; return 1; }
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
  pod=$(kubectl -n hoard-system get pods -l app=hoard-mounter -o jsonpath='{.items[0].metadata.name}')
  devices_before=$(staging_devices)
  [ "$(echo "$devices_before" | wc -l)" = 3 ] || die "want 3 staged volumes, have: $devices_before"
  kubectl -n hoard-system delete pod "$pod" --grace-period=1 --timeout=60s >/dev/null
  wait_for 90 "a new mounter" hoard_ready
  wait_for 60 "reader-1 to read again after the mounter restart" reads_right reader-1 ||
    die "reader-1 after the mounter restart: $READ_OUT"
  wait_for 30 "reader-inline to read again" reads_right reader-inline "/data/data/$OBJECT" ||
    die "reader-inline after the mounter restart: $READ_OUT"
  check_read reader-2
  check_read reader-prefix
  local devices_after; devices_after=$(staging_devices)
  [ "$(echo "$devices_after" | cut -d' ' -f1)" = "$(echo "$devices_before" | cut -d' ' -f1)" ] &&
    [ -z "$(comm -12 <(echo "$devices_before") <(echo "$devices_after"))" ] ||
    die "staging mounts before the mounter restart: $devices_before; after: $devices_after (want the same paths, new devices)"
  log "PASS mounter restart: the plugin mounted the 3 volumes again (the inline one too); running HostToContainer pods read again"
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
  left=$(s3 GET "$BUCKET?list-type=2&prefix=$SCRATCH_PREFIX" | grep -o '<Key>[^<]*</Key>' || true)
  [ -z "$left" ] || die "DeleteVolume left objects under $SCRATCH_PREFIX: $left"
  [ "$(s3 GET "$BUCKET/data/$OBJECT" | sha256sum | cut -d' ' -f1)" = "$DIGEST" ] ||
    die "the bucket volume's data is gone or changed (provisioning: bucket must never delete)"
  wait_for 30 "the hoard mounts to go" no_hoard_mounts || { log "hoard mounts left:"; hoard_mounts >&2; return 1; }
  local records
  records=$(find "$HOARD_RUN/node" -name '*.json' 2>/dev/null)
  [ -z "$records" ] || die "the node plugin kept records of unstaged volumes: $records"
  log "PASS teardown: volumes unpublished, unstaged and deleted (the prefix volume's objects too); no hoard mount left"
}

run_tests() {
  start_minio
  deploy_hoard
  storage
  test_bucket_volume
  test_node_plugin_restart
  test_prefix_volume
  test_inline_volume
  test_mounter_restart
  test_teardown
}
