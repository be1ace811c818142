{{/* Names */}}
{{- define "hoard.fullname" -}}
{{- if contains "hoard" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-hoard" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hoard.labels" -}}
app.kubernetes.io/name: hoard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selector labels of a component: include "hoard.selector" (list . "worker") */}}
{{- define "hoard.selector" -}}
app.kubernetes.io/name: hoard
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "hoard.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Common args of every hoard process. */}}
{{- define "hoard.logArgs" -}}
- --log-level={{ .Values.logLevel }}
- --log-format={{ .Values.logFormat }}
{{- end -}}

{{/* Host of a coordinator member: include "hoard.coordinatorHost" (list . i) */}}
{{- define "hoard.coordinatorHost" -}}
{{- $ := index . 0 -}}{{- $i := index . 1 -}}
{{- $c := $.Values.coordinator -}}
{{- if $c.members -}}
{{- (index $c.members $i).host -}}
{{- else -}}
{{- printf "%s-coordinator-%d.%s-coordinator.%s.svc.%s" (include "hoard.fullname" $) (int $i) (include "hoard.fullname" $) $.Release.Namespace $c.clusterDomain -}}
{{- end -}}
{{- end -}}

{{/* The etcd client URLs workers and mounters use, comma-separated. */}}
{{- define "hoard.etcdEndpoints" -}}
{{- if .Values.coordinator.enabled -}}
{{- $urls := list -}}
{{- range $i, $_ := until (int .Values.coordinator.replicas) -}}
{{- $urls = append $urls (printf "http://%s:%d" (include "hoard.coordinatorHost" (list $ $i)) (int $.Values.coordinator.clientPort)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else -}}
{{- join "," .Values.externalEtcd.endpoints -}}
{{- end -}}
{{- end -}}

{{/* The initial cluster of the coordinator: name=peerURL,... */}}
{{- define "hoard.initialCluster" -}}
{{- $peers := list -}}
{{- range $i, $_ := until (int .Values.coordinator.replicas) -}}
{{- $peers = append $peers (printf "%s-coordinator-%d=http://%s:%d" (include "hoard.fullname" $) $i (include "hoard.coordinatorHost" (list $ $i)) (int $.Values.coordinator.peerPort)) -}}
{{- end -}}
{{- join "," $peers -}}
{{- end -}}

{{/* An HTTP probe: include "hoard.probe" (list . path port) */}}
{{- define "hoard.probe" -}}
{{- $ := index . 0 -}}
httpGet:
  path: {{ index . 1 }}
  port: {{ index . 2 }}
  {{- with $.Values.probeHost }}
  host: {{ . }}
  {{- end }}
{{- end -}}

{{/* Pod and container security of the roles that need no privilege. */}}
{{- define "hoard.nonrootPod" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}
{{- define "hoard.nonrootContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{/* An init container that gives host directories to the nonroot user:
     include "hoard.prepareDirs" (list . "/dir" ...) */}}
{{- define "hoard.prepareDirs" -}}
{{- $ := index . 0 -}}
- name: prepare-dirs
  image: {{ include "hoard.image" $ }}
  imagePullPolicy: {{ $.Values.image.pullPolicy }}
  args: [prepare-dir, --owner=65532:65532{{ range rest . }}, {{ . }}{{ end }}]
  securityContext:
    runAsNonRoot: false
    runAsUser: 0
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities: {drop: [ALL], add: [CHOWN, FOWNER]}
  resources:
    requests: {cpu: 10m, memory: 32Mi}
    limits: {memory: 64Mi}
  env:
    - {name: GOMEMLIMIT, value: 48MiB}
{{- end -}}

{{- define "hoard.scheduling" -}}
{{- $ := index . 0 -}}{{- $c := index . 1 -}}
{{- with ($c.nodeSelector | default $.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($c.tolerations | default $.Values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Checks of values that would otherwise make a broken install. */}}
{{- define "hoard.validate" -}}
{{- $c := .Values.coordinator -}}
{{- if $c.enabled -}}
{{- $r := int $c.replicas -}}
{{- if or (lt $r 1) (gt $r 7) (eq (mod $r 2) 0) -}}
{{- fail (printf "coordinator.replicas is %d: want 1, 3, 5 or 7 (etcd needs an odd number of members)" $r) -}}
{{- end -}}
{{- if and $c.members (ne (len $c.members) $r) -}}
{{- fail (printf "coordinator.members lists %d hosts for %d replicas: give one per replica, or none for DNS names" (len $c.members) $r) -}}
{{- end -}}
{{- if not (has $c.persistence.type (list "pvc" "hostPath" "emptyDir")) -}}
{{- fail (printf "coordinator.persistence.type %q: want pvc, hostPath or emptyDir" $c.persistence.type) -}}
{{- end -}}
{{- if .Values.externalEtcd.endpoints -}}
{{- fail "externalEtcd.endpoints is set and coordinator.enabled is true: pick one (coordinator.enabled=false to use your etcd)" -}}
{{- end -}}
{{- else if and .Values.worker.enabled (not .Values.externalEtcd.endpoints) -}}
{{- fail "worker.enabled needs an etcd: coordinator.enabled=true, or externalEtcd.endpoints" -}}
{{- end -}}
{{- range .Values.externalEtcd.endpoints -}}
{{- if not (regexMatch "^https?://[^/]+:[0-9]+/?$" .) -}}
{{- fail (printf "externalEtcd.endpoints: %q: want http://host:port" .) -}}
{{- end -}}
{{- end -}}
{{- range $name := list "authTTL" "authGrace" "fetchStall" "fetchTimeout" -}}
{{- $v := toString (index $.Values.worker $name) -}}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$" $v) -}}
{{- fail (printf "worker.%s %q: want a duration such as 90s, 1m or 1h30m" $name $v) -}}
{{- end -}}
{{- end -}}
{{- if not (has .Values.logFormat (list "json" "text")) -}}
{{- fail (printf "logFormat %q: want json or text" .Values.logFormat) -}}
{{- end -}}
{{- if not (has .Values.logLevel (list "debug" "info" "warn" "error")) -}}
{{- fail (printf "logLevel %q: want debug, info, warn or error" .Values.logLevel) -}}
{{- end -}}
{{- range .Values.preload.jobs -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,28}[a-z0-9])?$" (.name | default "")) -}}
{{- fail (printf "preload.jobs: name %q: want a DNS label of at most 30 characters" (.name | default "")) -}}
{{- end -}}
{{- if not $.Values.worker.enabled -}}
{{- fail (printf "preload.jobs %s: preloading warms the cluster cache: needs worker.enabled" .name) -}}
{{- end -}}
{{- if and (not .source) (not .storageClass) -}}
{{- fail (printf "preload.jobs %s: give a source (s3://bucket/prefix/) or a storageClass" .name) -}}
{{- end -}}
{{- end -}}
{{- range .Values.storageClasses -}}
{{- if or (not .name) (not .bucket) -}}
{{- fail "storageClasses: every entry needs a name and a bucket" -}}
{{- end -}}
{{- if and .credentials .existingSecret -}}
{{- fail (printf "storageClasses %s: credentials and existingSecret both set: pick one" .name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The Secret of the cache cluster's mutual TLS. */}}
{{- define "hoard.tlsSecret" -}}
{{- .Values.tls.existingSecret | default (printf "%s-tls" (include "hoard.fullname" .)) -}}
{{- end -}}

{{/* The address a health server binds: include "hoard.healthAddr" (list . port) */}}
{{- define "hoard.healthAddr" -}}
{{- printf "%s:%d" ((index . 0).Values.probeHost) (int (index . 1)) -}}
{{- end -}}

{{/* GOMEMLIMIT and the log env: include "hoard.goEnv" limit */}}
{{- define "hoard.goEnv" -}}
- name: GOMEMLIMIT
  value: {{ . | quote }}
{{- end -}}
