# The operator's view, end to end (sourced by both suites' run.sh after
# their test.sh; run_tests calls run_ops_tests while OPS_CLAIM is bound): a
# dataset warmed by the chart's preload Job, a pod whose init container
# waits until it is warm, a pod on OPS_NODE that then reads it with 0 GETs
# to MinIO and shows up as bytes by source on that node's mounter, every
# metric the Grafana dashboard queries answered by the running components,
# and hoard status in OPS_NODE's mounter.
#
# Needs what test.sh needs (minio.sh, chart.sh, jsonpath_is ...), and from
# the suite's test.sh:
#   OPS_NODE         the node the reader runs on, whose mounter is looked at
#   OPS_CLAIM        a PVC in $NS whose volume holds OPS_PREFIX/ of $BUCKET
#   OPS_PREFIX       the claim's prefix in the bucket
#   OPS_SECRET       a Secret in $HOARD_NS with the bucket's keys
#   OPS_PRELOAD_SET  helm --set values that point preload.jobs[0] at
#                    s3://$BUCKET/$OPS_PREFIX/warm/ (a storageClasses entry,
#                    or the source, endpoint and Secret themselves)
#   OPS_STATUS_POD   a running pod on OPS_NODE whose volume hoard status lists
#   COORD_ENDPOINTS  the coordinator's client URL, from the nodes
#   metrics_urls     prints the /metrics URL of every hoard component
#   mounter_url NODE the /metrics URL of NODE's mounter

WARM_FILES=${E2E_WARM_FILES:-8}

# component_metrics: every hoard component's /metrics, concatenated.
component_metrics() {
  local url
  for url in $(metrics_urls); do
    curl -sf --max-time 10 "$url" || die "no /metrics at $url"
  done
}

# mounter_metric NAME LABELS: OPS_NODE's mounter's NAME summed over series
# whose labels contain LABELS (e.g. 'source="worker"').
mounter_metric() {
  curl -sf --max-time 10 "$(mounter_url "$OPS_NODE")" |
    awk -v m="$1" -v l="$2" 'index($1, m "{") == 1 && index($1, l) {n += $2} END {printf "%d\n", n}'
}

# mounter_on NODE: the name of NODE's mounter pod.
mounter_on() {
  kubectl -n "$HOARD_NS" get pods -l app.kubernetes.io/component=mounter --field-selector "spec.nodeName=$1" \
    -o jsonpath='{.items[0].metadata.name}'
}

# volume_of POD: the CSI volume ID of POD's first claim.
volume_of() {
  local claim
  claim=$(kubectl -n "$NS" get pod "$1" -o jsonpath='{.spec.volumes[?(@.persistentVolumeClaim)].persistentVolumeClaim.claimName}')
  kubectl get pv "$(kubectl -n "$NS" get pvc "${claim%% *}" -o jsonpath='{.spec.volumeName}')" -o jsonpath='{.spec.csi.volumeHandle}'
}

# put_warm_dataset: WARM_FILES files under OPS_PREFIX/warm/ (the claim's
# warm/), none read before.
put_warm_dataset() {
  local i size total=0
  for i in $(seq 1 "$WARM_FILES"); do
    size=$(( (1 + i % 3) << 20 | i * 7919 ))
    head -c "$size" /dev/urandom >"$RUN/warm.bin"
    s3 PUT "$BUCKET/$OPS_PREFIX/warm/w$i.bin" -T "$RUN/warm.bin" >/dev/null
    total=$((total + size))
  done
  rm -f "$RUN/warm.bin"
  WARM_BYTES=$total
}

# wait_warm_pod: a pod whose init container waits (hoard load --check
# --wait) until OPS_PREFIX/warm/ is cached, then exits. It runs beside hoard
# (in its namespace), whose client certificate the workers' mutual TLS asks
# for, with OPS_SECRET to list the bucket.
wait_warm_pod() {
  kubectl -n "$HOARD_NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: wait-warm}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  hostNetwork: true   # as hoard's pods (no DNS or Service IPs in the e2e clusters)
  securityContext: {runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532}
  initContainers:
    - name: wait-warm
      image: localhost/hoard:e2e
      imagePullPolicy: Never
      args: [load, --check, --wait, --interval=2s, --timeout=180s, --etcd=$COORD_ENDPOINTS,
             --tls-ca=/etc/hoard/tls/ca.crt, --tls-cert=/etc/hoard/tls/client.crt, --tls-key=/etc/hoard/tls/client.key,
             --s3-endpoint=$MINIO_URL, --s3-path-style, --s3-region=us-east-1,
             "s3://$BUCKET/$OPS_PREFIX/warm/"]
      env:
        - {name: AWS_ACCESS_KEY_ID, valueFrom: {secretKeyRef: {name: $OPS_SECRET, key: accessKeyID}}}
        - {name: AWS_SECRET_ACCESS_KEY, valueFrom: {secretKeyRef: {name: $OPS_SECRET, key: secretAccessKey}}}
      volumeMounts:
        - {name: tls, mountPath: /etc/hoard/tls, readOnly: true}
  volumes:
    - name: tls
      secret: {secretName: hoard-tls, defaultMode: 0440}
  containers:
    - name: done
      image: localhost/busybox:e2e
      imagePullPolicy: Never
      command: [sh, -c, "exit 0"]
EOF
}

# test_preload_job: the chart's preload Job warms OPS_PREFIX/warm/ (its log shows
# progress and a summary); the waiting pod's init container held until then;
# a training pod then reads the dataset with 0 GETs, and the mounter counts
# its bytes as from the worker, none from the bucket.
test_preload_job() {
  local t=$SECONDS job g0 g1 g2 w0 w1 b0 b1 vol
  put_warm_dataset
  wait_warm_pod
  sleep 3
  [ "$(kubectl -n "$HOARD_NS" get pod wait-warm -o jsonpath='{.status.phase}')" = Pending ] ||
    die "wait-warm went on before the dataset was warm: $(kubectl -n "$HOARD_NS" logs wait-warm -c wait-warm 2>&1)"
  g0=$(settled_gets)
  helm upgrade hoard "$CHART_DIR" --namespace "$HOARD_NS" --reuse-values \
    --set "preload.jobs[0].name=warm,$OPS_PRELOAD_SET" \
    --set metrics.dashboard.enabled=true >"$RUN/logs/helm-preload.log" ||
    { cat "$RUN/logs/helm-preload.log" >&2; return 1; }
  job=$(kubectl -n "$HOARD_NS" get jobs -l hoard.dev/preload=warm -o jsonpath='{.items[0].metadata.name}')
  [ -n "$job" ] || die "helm upgrade with preload.jobs made no Job"
  wait_for 180 "the preload Job $job" jsonpath_is 1 -n "$HOARD_NS" job "$job" -o jsonpath='{.status.succeeded}' ||
    { kubectl -n "$HOARD_NS" describe job "$job" >&2; kubectl -n "$HOARD_NS" logs "job/$job" >&2; return 1; }
  local jlog; jlog=$(kubectl -n "$HOARD_NS" logs "job/$job")
  echo "$jlog" >"$RUN/logs/preload-job.log"
  grep -q "^load: " <<<"$jlog" || die "the preload Job's log has no progress line: $jlog"
  grep -q "loaded $WARM_FILES of $WARM_FILES files" <<<"$jlog" || die "the preload Job's summary: $jlog"
  g1=$(settled_gets)
  [ $((g1 - g0)) -gt 0 ] || die "the preload Job made no GET to MinIO"
  wait_for 60 "wait-warm to finish once warm" eval '[ "$(kubectl -n "$HOARD_NS" get pod wait-warm -o jsonpath={.status.phase})" = Succeeded ]'
  [ "$(kubectl -n "$HOARD_NS" get pod wait-warm -o jsonpath='{.status.phase}')" = Succeeded ] ||
    die "wait-warm: $(kubectl -n "$HOARD_NS" logs wait-warm -c wait-warm 2>&1)"
  local wlog; wlog=$(kubectl -n "$HOARD_NS" logs wait-warm -c wait-warm 2>&1)
  grep -q "100.0% cached" <<<"$wlog" || die "wait-warm's log: $wlog"

  vol=$(kubectl get pv "$(kubectl -n "$NS" get pvc "$OPS_CLAIM" -o jsonpath='{.spec.volumeName}')" -o jsonpath='{.spec.csi.volumeHandle}')
  w0=$(mounter_metric hoard_mount_read_bytes_total "source=\"worker\"")
  b0=$(mounter_metric hoard_mount_read_bytes_total "source=\"bucket\"")
  warm_reader
  g2=$(settled_gets)
  w1=$(mounter_metric hoard_mount_read_bytes_total "source=\"worker\"")
  b1=$(mounter_metric hoard_mount_read_bytes_total "source=\"bucket\"")
  [ $((g2 - g1)) = 0 ] || die "reading the preloaded dataset made $((g2 - g1)) GETs to MinIO; want 0"
  [ $((w1 - w0)) -ge "$WARM_BYTES" ] || die "the mounter counted $((w1 - w0)) bytes from the worker for $WARM_BYTES read"
  [ $((b1 - b0)) = 0 ] || die "the mounter counted $((b1 - b0)) bytes from the bucket (cache bypassed)"
  mounter_metric hoard_mount_read_bytes_total "volume=\"$vol\"" | grep -qv '^0$' ||
    die "no hoard_mount_read_bytes_total for volume $vol"
  kubectl -n "$HOARD_NS" delete pod wait-warm --grace-period=1 --timeout=60s >/dev/null
  log "PASS preload Job in $((SECONDS - t))s: $WARM_FILES files, $((WARM_BYTES >> 20)) MiB warmed with $((g1 - g0)) GETs; an init container waited for it; a pod read it with 0 GETs, $(((w1 - w0) >> 20)) MiB from the worker on its mounter"
}

# warm_reader: a pod on OPS_NODE that reads every file of OPS_CLAIM's warm/
# once, says how many, and stays (its volume stays staged: a volume's
# metrics go with it; run_ops_tests deletes it at the end).
warm_reader() {
  kubectl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: warm-reader}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: $OPS_NODE}
  containers:
    - name: read
      image: localhost/busybox:e2e
      imagePullPolicy: Never
      command: [sh, -c, "for f in /data/warm/*; do cat \$f >/dev/null; done; echo read \$(ls /data/warm | wc -l); sleep 3600"]
      volumeMounts:
        - {name: data, mountPath: /data, readOnly: true}
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: $OPS_CLAIM, readOnly: true}
EOF
  wait_for 120 "warm-reader to read the dataset" eval '[ "$(kubectl -n "$NS" logs warm-reader 2>/dev/null)" = "read $WARM_FILES" ]' ||
    die "warm-reader: $(kubectl -n "$NS" logs warm-reader 2>&1)"
}

# test_dashboard_metrics: every metric the Grafana dashboard queries is
# served by the running components, and the dashboard's ConfigMap holds it.
test_dashboard_metrics() {
  local all m missing="" dash
  dash=$CHART_DIR/dashboards/hoard.json
  all=$(component_metrics)
  for m in $(grep -o 'hoard_[a-z0-9_]*' "$dash" | sort -u); do
    grep -q "^$m[{ ]" <<<"$all" || missing="$missing $m"
  done
  [ -z "$missing" ] || die "the dashboard queries metrics no component serves:$missing"
  kubectl -n "$HOARD_NS" get configmap hoard-dashboard -o jsonpath='{.data.hoard\.json}' | cmp -s - <(sed -z 's/\n$//' "$dash") ||
    die "the dashboard ConfigMap differs from $dash"
  [ "$(echo "$all" | awk '$1 ~ /^hoard_mount_bypassed_bytes_total/ {n += $2} END {print n + 0}')" = 0 ] ||
    die "bytes bypassed the cache: $(echo "$all" | grep '^hoard_mount_bypassed_bytes_total')"
  log "PASS dashboard: its $(grep -o 'hoard_[a-z0-9_]*' "$dash" | sort -u | wc -l) metrics served by the components; no byte bypassed the cache"
}

# test_status: hoard status -o json in OPS_NODE's mounter with no flag (the
# one-liner of docs/operations.md: the cluster and the client certificate
# are the mounter's): ok, no problem, the workers alive and reachable, the
# coordinator healthy, OPS_STATUS_POD's volume listed.
test_status() {
  local out
  out=$(kubectl -n "$HOARD_NS" exec "$(mounter_on "$OPS_NODE")" -- hoard status -o json) || die "hoard status: $out"
  echo "$out" >"$RUN/logs/status.json"
  grep -q '"state": "ok"' <<<"$out" && grep -q '"problems": \[\]' <<<"$out" || die "hoard status is not ok: $out"
  grep -q '"alive": true' <<<"$out" && grep -q '"reachable": true' <<<"$out" ||
    die "hoard status shows no live, reachable worker: $out"
  grep -q '"healthy": true' <<<"$out" || die "hoard status: the coordinator is not healthy: $out"
  local vol; vol=$(volume_of "$OPS_STATUS_POD")
  grep -q "\"volume_id\": \"$vol\"" <<<"$out" || die "hoard status does not list volume $vol ($OPS_STATUS_POD's): $out"
  log "PASS hoard status in $OPS_NODE's mounter: ok, workers alive, coordinator healthy, volume $vol listed with its traffic"
}

run_ops_tests() {
  test_preload_job
  test_dashboard_metrics
  test_status
  kubectl -n "$NS" delete pod warm-reader --grace-period=1 --timeout=60s >/dev/null
}
