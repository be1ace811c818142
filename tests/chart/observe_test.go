package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMonitoringOffByDefault: a default install makes no PodMonitor (its
// CRD may not exist), no dashboard and no preload Job; every hoard pod still
// serves /metrics on a named port a PodMonitor can select.
func TestMonitoringOffByDefault(t *testing.T) {
	objs := render(t)
	for _, o := range objs {
		if k := o.kind(); k == "PodMonitor" || k == "ServiceMonitor" || k == "Job" ||
			(k == "ConfigMap" && strings.HasSuffix(o.name(), "-dashboard")) {
			t.Errorf("default install renders %s %s", k, o.name())
		}
	}
	pods := workloads(objs)
	for name, port := range map[string]string{"hoard-worker": "health", "hoard-coordinator": "metrics",
		"hoard-mounter": "health", "hoard-node": "health", "hoard-controller": "health"} {
		var names []string
		for _, c := range list(pods[name], "containers") {
			for _, p := range list(c, "ports") {
				names = append(names, str(p, "name"))
			}
		}
		if !slices.Contains(names, port) {
			t.Errorf("%s has no port %q (has %v) for the PodMonitor", name, port, names)
		}
	}
	c := container(pods["hoard-coordinator"], "coordinator")
	if v, ok := arg(c, "--metrics-addr"); !ok || !strings.HasSuffix(v, ":9812") {
		t.Errorf("coordinator --metrics-addr = %q", v)
	}
}

// TestMonitoringOn: metrics.podMonitor.enabled and metrics.dashboard.enabled
// make a PodMonitor over every port that serves /metrics and a ConfigMap
// holding dashboards/hoard.json as it is.
func TestMonitoringOn(t *testing.T) {
	objs := render(t, "--set", "metrics.podMonitor.enabled=true,metrics.podMonitor.labels.release=prom,metrics.dashboard.enabled=true,metrics.dashboard.namespace=monitoring")
	pm := find(objs, "PodMonitor", "hoard")
	if pm == nil {
		t.Fatal("no PodMonitor")
	}
	if str(pm, "metadata", "labels", "release") != "prom" || str(pm, "spec", "selector", "matchLabels", "app.kubernetes.io/instance") != "hoard" {
		t.Errorf("PodMonitor labels or selector: %v", pm)
	}
	var ports []string
	for _, e := range list(pm, "spec", "podMetricsEndpoints") {
		ports = append(ports, str(e, "port"))
		if str(e, "path") != "/metrics" {
			t.Errorf("endpoint %v: path", e)
		}
	}
	slices.Sort(ports)
	// Not the workers' data port: it wants a client certificate, and their
	// health port serves the same metrics (each worker scraped once).
	if !slices.Equal(ports, []string{"health", "metrics"}) {
		t.Errorf("PodMonitor ports %v", ports)
	}
	cm := find(objs, "ConfigMap", "hoard-dashboard")
	if cm == nil {
		t.Fatal("no dashboard ConfigMap")
	}
	if str(cm, "metadata", "namespace") != "monitoring" || str(cm, "metadata", "labels", "grafana_dashboard") != "1" {
		t.Errorf("dashboard ConfigMap metadata: %v", get(cm, "metadata"))
	}
	want, err := os.ReadFile(filepath.Join(chartDir(), "dashboards", "hoard.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := str(cm, "data", "hoard.json")
	if strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
		t.Error("the ConfigMap's dashboard differs from dashboards/hoard.json")
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(got), &d); err != nil || d["uid"] != "hoard-overview" {
		t.Errorf("dashboard JSON: %v (uid %v)", err, d["uid"])
	}
}

// TestPreloadJob: a preload entry naming a StorageClass becomes a Job that
// runs hoard load of its bucket and prefix through the cluster cache, with
// its Secret, as the nonroot user; its name changes with the entry.
func TestPreloadJob(t *testing.T) {
	sc := "storageClasses[0].name=imagenet,storageClasses[0].bucket=datasets,storageClasses[0].prefix=imagenet/train,storageClasses[0].endpoint=http://minio:9000,storageClasses[0].existingSecret=ds-keys,storageClasses[0].parameters.pathStyle=true"
	objs := render(t, "--set", sc+",preload.jobs[0].name=imagenet,preload.jobs[0].storageClass=imagenet,preload.jobs[0].parallel=4")
	var job object
	for _, o := range objs {
		if o.kind() == "Job" {
			job = o
		}
	}
	if job == nil || !strings.HasPrefix(job.name(), "hoard-preload-imagenet-") {
		t.Fatalf("no preload Job: %v", job)
	}
	pod := get(job, "spec", "template", "spec")
	c := container(pod, "load")
	a := args(c)
	for _, want := range []string{"load", "--cluster=default", "--parallel=4", "--s3-endpoint=http://minio:9000", "--s3-path-style",
		"--tls-cert=/etc/hoard/tls/client.crt", "s3://datasets/imagenet/train/"} {
		if !slices.Contains(a, want) {
			t.Errorf("load args %v lack %q", a, want)
		}
	}
	if v, _ := arg(c, "--etcd"); !strings.Contains(v, "hoard-coordinator-0") {
		t.Errorf("--etcd = %q, want the coordinator", v)
	}
	if a[len(a)-1] != "s3://datasets/imagenet/train/" {
		t.Errorf("the source is not the last argument: %v", a)
	}
	var secret string
	for _, e := range list(c, "env") {
		if str(e, "name") == "AWS_SECRET_ACCESS_KEY" {
			secret = str(e, "valueFrom", "secretKeyRef", "name")
		}
	}
	if secret != "ds-keys" {
		t.Errorf("credentials from %q, want the StorageClass's Secret ds-keys", secret)
	}
	if v := list(pod, "volumes"); len(v) != 1 || str(v[0], "secret", "secretName") != "hoard-tls" {
		t.Errorf("the Job does not mount the TLS Secret hoard-tls: %v", v)
	}
	if get(pod, "securityContext", "runAsUser") != float64(65532) || str(pod, "restartPolicy") != "Never" {
		t.Errorf("pod: runAsUser %v, restartPolicy %v", get(pod, "securityContext", "runAsUser"), get(pod, "restartPolicy"))
	}
	var gomem bool
	for _, e := range list(c, "env") {
		gomem = gomem || (str(e, "name") == "GOMEMLIMIT" && str(e, "value") != "")
	}
	if !gomem || str(c, "resources", "limits", "memory") == "" || get(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Errorf("load container: GOMEMLIMIT %v, memory limit %q, read-only root %v", gomem,
			str(c, "resources", "limits", "memory"), get(c, "securityContext", "readOnlyRootFilesystem"))
	}

	again := render(t, "--set", sc+",preload.jobs[0].name=imagenet,preload.jobs[0].storageClass=imagenet,preload.jobs[0].parallel=8")
	for _, o := range again {
		if o.kind() == "Job" && o.name() == job.name() {
			t.Error("a changed preload entry kept its Job's name: it would not run again")
		}
	}
}

func TestPreloadBadValues(t *testing.T) {
	for set, want := range map[string]string{
		"preload.jobs[0].name=x": "give a source",
		"preload.jobs[0].name=Bad_Name,preload.jobs[0].source=s3://b/":                                         "DNS label",
		"preload.jobs[0].name=x,preload.jobs[0].storageClass=nope":                                             "not among storageClasses",
		"worker.enabled=false,coordinator.enabled=false,preload.jobs[0].name=x,preload.jobs[0].source=s3://b/": "needs worker.enabled",
	} {
		t.Run(set, func(t *testing.T) {
			_, err := helm(t, "template", "hoard", chartDir(), "--set", set)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want an error naming %q", err, want)
			}
		})
	}
}
