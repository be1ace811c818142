package chart

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"hoard.dev/hoard/tests/testenv"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func chartDir() string { return filepath.Join(repoRoot(), "deploy", "helm", "hoard") }

// helmBinary is $HOARD_CACHE/bin/helm, else helm on PATH.
func helmBinary(t *testing.T) string {
	p := filepath.Join(testenv.CacheDir(), "bin", "helm")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	p, err := exec.LookPath("helm")
	testenv.RequireOrSkip(t, "helm (scripts/install-tools.sh builds it)", err)
	return p
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	// No user's helm settings or repositories.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out.String(), nil
}

// object is one rendered manifest.
type object map[string]any

func (o object) kind() string { return str(o, "kind") }
func (o object) name() string { return str(o, "metadata", "name") }

func get(v any, path ...string) any {
	if o, ok := v.(object); ok {
		v = map[string]any(o)
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

// render runs helm template with values (--set style, or -f FILE) and
// parses the output.
func render(t *testing.T, args ...string) []object {
	t.Helper()
	out, err := helm(t, append([]string{"template", "hoard", chartDir(), "--namespace", "hoard-system"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, out)
}

func parse(t *testing.T, out string) []object {
	var objs []object
	for _, doc := range strings.Split(out, "\n---") {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs
}

func find(objs []object, kind, name string) object {
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	return nil
}

// workloads returns the pod templates of Deployments, DaemonSets and
// StatefulSets by name.
func workloads(objs []object) map[string]any {
	out := map[string]any{}
	for _, o := range objs {
		switch o.kind() {
		case "Deployment", "DaemonSet", "StatefulSet":
			out[o.name()] = get(o, "spec", "template", "spec")
		}
	}
	return out
}

func args(c any) []string {
	var out []string
	for _, a := range list(c, "args") {
		out = append(out, a.(string))
	}
	return out
}

func arg(c any, flag string) (string, bool) {
	for _, a := range args(c) {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

func container(pod any, name string) any {
	for _, c := range list(pod, "containers") {
		if str(c, "name") == name {
			return c
		}
	}
	return nil
}

func TestLint(t *testing.T) {
	for _, vals := range [][]string{
		nil,
		{"-f", filepath.Join(repoRoot(), "scripts", "e2e", "values.yaml")},
		{"--set", "worker.enabled=false,coordinator.enabled=false"},
	} {
		if out, err := helm(t, append([]string{"lint", "--strict", chartDir()}, vals...)...); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
}

// TestDefaultInstall checks what every default install must hold.
func TestDefaultInstall(t *testing.T) {
	objs := render(t)
	pods := workloads(objs)
	want := []string{"hoard-controller", "hoard-node", "hoard-mounter", "hoard-worker", "hoard-coordinator"}
	for _, n := range want {
		if pods[n] == nil {
			t.Fatalf("no workload %s; have %v", n, keys(pods))
		}
	}
	if find(objs, "CSIDriver", "csi.hoard.dev") == nil {
		t.Error("no CSIDriver csi.hoard.dev")
	}
	nonroot := map[string]bool{"hoard-controller": true, "hoard-worker": true, "hoard-coordinator": true}
	for name, pod := range pods {
		if get(pod, "hostNetwork") == true {
			t.Errorf("%s: hostNetwork by default", name)
		}
		checkContainers(t, name, pod)
		uid := get(pod, "securityContext", "runAsUser")
		if nonroot[name] {
			if uid != float64(65532) || get(pod, "securityContext", "runAsNonRoot") != true {
				t.Errorf("%s: runs as %v, want the nonroot user 65532", name, uid)
			}
			for _, c := range list(pod, "containers") {
				if get(c, "securityContext", "allowPrivilegeEscalation") != false ||
					!slices.Contains(list(c, "securityContext", "capabilities", "drop"), any("ALL")) {
					t.Errorf("%s/%s: want no privilege escalation and every capability dropped", name, str(c, "name"))
				}
			}
		}
	}
	if get(container(pods["hoard-node"], "plugin"), "securityContext", "privileged") != true {
		t.Error("the node plugin must be privileged (mount(2))")
	}
	// Clients and workers point at the coordinator's member.
	endpoint := "http://hoard-coordinator-0.hoard-coordinator.hoard-system.svc.cluster.local:2379"
	for _, c := range []any{container(pods["hoard-mounter"], "mounter"), container(pods["hoard-worker"], "worker")} {
		if v, _ := arg(c, "--etcd"); v != endpoint {
			t.Errorf("%s --etcd=%q, want %s", str(c, "name"), v, endpoint)
		}
	}
	if _, ok := arg(container(pods["hoard-mounter"], "mounter"), "--cache-dir"); ok {
		t.Error("the mounter keeps a private cache although the workers are on")
	}
	pdb := find(objs, "PodDisruptionBudget", "hoard-coordinator")
	if pdb == nil || get(pdb, "spec", "maxUnavailable") != float64(1) {
		t.Errorf("coordinator PodDisruptionBudget: %v", pdb)
	}
	sts := find(objs, "StatefulSet", "hoard-coordinator")
	if len(list(sts, "spec", "volumeClaimTemplates")) != 1 {
		t.Error("the coordinator keeps no data on a PersistentVolume")
	}
	svc := find(objs, "Service", "hoard-coordinator")
	if str(svc, "spec", "clusterIP") != "None" || get(svc, "spec", "publishNotReadyAddresses") != true {
		t.Errorf("the coordinator's Service must be headless and publish unready members: %v", get(svc, "spec"))
	}
	checkRBAC(t, objs)
}

func keys(m map[string]any) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// checkContainers: every container has a memory limit and GOMEMLIMIT;
// every hoard container a liveness and a readiness probe (the provisioner
// sidecar: liveness).
func checkContainers(t *testing.T, name string, pod any) {
	t.Helper()
	all := append(list(pod, "initContainers"), list(pod, "containers")...)
	for _, c := range all {
		cn := name + "/" + str(c, "name")
		if str(c, "resources", "limits", "memory") == "" || get(c, "resources", "requests") == nil {
			t.Errorf("%s: no memory limit or no requests", cn)
		}
		var gomem bool
		for _, e := range list(c, "env") {
			gomem = gomem || (str(e, "name") == "GOMEMLIMIT" && str(e, "value") != "")
		}
		if !gomem {
			t.Errorf("%s: no GOMEMLIMIT", cn)
		}
	}
	for _, c := range list(pod, "containers") {
		cn := name + "/" + str(c, "name")
		if get(c, "livenessProbe") == nil {
			t.Errorf("%s: no liveness probe", cn)
		}
		if str(c, "name") != "csi-provisioner" && get(c, "readinessProbe") == nil {
			t.Errorf("%s: no readiness probe", cn)
		}
	}
}

// checkRBAC: only the controller talks to the API server; it may read
// Secrets but not list them, and holds leases only in its namespace.
func checkRBAC(t *testing.T, objs []object) {
	for _, o := range objs {
		if o.kind() == "ServiceAccount" && o.name() != "hoard-controller" && get(o, "automountServiceAccountToken") != false {
			t.Errorf("ServiceAccount %s mounts a token it does not need", o.name())
		}
		if o.kind() != "ClusterRole" {
			continue
		}
		for _, r := range list(o, "rules") {
			res := list(r, "resources")
			verbs := list(r, "verbs")
			if slices.Contains(res, any("secrets")) && (len(verbs) != 1 || verbs[0] != "get") {
				t.Errorf("ClusterRole %s: secrets %v, want get only", o.name(), verbs)
			}
			if slices.Contains(res, any("leases")) || slices.Contains(verbs, any("*")) {
				t.Errorf("ClusterRole %s: %v %v cluster-wide", o.name(), res, verbs)
			}
		}
	}
}

func TestThreeCoordinators(t *testing.T) {
	objs := render(t, "--set", "coordinator.replicas=3")
	pods := workloads(objs)
	c := container(pods["hoard-coordinator"], "coordinator")
	ic, _ := arg(c, "--initial-cluster")
	if n := len(strings.Split(ic, ",")); n != 3 {
		t.Fatalf("--initial-cluster %q lists %d members, want 3", ic, n)
	}
	eps, _ := arg(container(pods["hoard-mounter"], "mounter"), "--etcd")
	if n := len(strings.Split(eps, ",")); n != 3 {
		t.Errorf("mounter --etcd %q: want the 3 members", eps)
	}
	if get(find(objs, "StatefulSet", "hoard-coordinator"), "spec", "podManagementPolicy") != "Parallel" {
		t.Error("members must start in parallel: a new cluster waits for a quorum")
	}
}

func TestMembersWithoutDNS(t *testing.T) {
	objs := render(t, "--set", "coordinator.replicas=3,coordinator.members[0].host=10.9.0.1,coordinator.members[1].host=10.9.0.2,coordinator.members[2].host=10.9.0.3")
	c := container(workloads(objs)["hoard-coordinator"], "coordinator")
	ic, _ := arg(c, "--initial-cluster")
	if !strings.Contains(ic, "hoard-coordinator-1=http://10.9.0.2:2380") {
		t.Errorf("--initial-cluster %q", ic)
	}
}

func TestExternalEtcdAndNodeCache(t *testing.T) {
	objs := render(t, "--set", "coordinator.enabled=false,externalEtcd.endpoints[0]=http://etcd.db:2379")
	pods := workloads(objs)
	if pods["hoard-coordinator"] != nil || find(objs, "PodDisruptionBudget", "hoard-coordinator") != nil {
		t.Error("a coordinator with an external etcd")
	}
	if v, _ := arg(container(pods["hoard-worker"], "worker"), "--etcd"); v != "http://etcd.db:2379" {
		t.Errorf("worker --etcd=%q", v)
	}

	objs = render(t, "--set", "worker.enabled=false,coordinator.enabled=false,mounter.cacheSize=7GiB")
	pods = workloads(objs)
	if pods["hoard-worker"] != nil || pods["hoard-coordinator"] != nil {
		t.Errorf("node-cache install has %v", keys(pods))
	}
	m := container(pods["hoard-mounter"], "mounter")
	if _, ok := arg(m, "--etcd"); ok {
		t.Error("the mounter reads through a cluster that is not installed")
	}
	if v, _ := arg(m, "--cache-size"); v != "7GiB" {
		t.Errorf("mounter --cache-size=%q", v)
	}
}

func TestValuesReachTheManifests(t *testing.T) {
	objs := render(t, "--set", "kubeletDir=/var/lib/k0s/kubelet,worker.cacheSize=123GiB,worker.cacheDir=/mnt/nvme/hoard,worker.authTTL=5m,worker.authGrace=0s,worker.fetchStall=45s,worker.fetchTimeout=5m,logLevel=debug,image.repository=reg.example/hoard,image.tag=v1.2.3,nodeSelector.pool=gpu,tolerations[0].operator=Exists,worker.s3Secret=ws",
		"--set-string", "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:x")
	pods := workloads(objs)
	plugin := container(pods["hoard-node"], "plugin")
	if v, _ := arg(plugin, "--kubelet-registration-path"); v != "/var/lib/k0s/kubelet/plugins/csi.hoard.dev/csi.sock" {
		t.Errorf("--kubelet-registration-path=%q", v)
	}
	w := container(pods["hoard-worker"], "worker")
	if v, _ := arg(w, "--capacity"); v != "123GiB" {
		t.Errorf("worker --capacity=%q", v)
	}
	for _, v := range list(pods["hoard-worker"], "volumes") {
		if str(v, "name") == "cache" && str(v, "hostPath", "path") != "/mnt/nvme/hoard" {
			t.Errorf("worker cache volume %v", v)
		}
	}
	if v, _ := arg(w, "--log-level"); v != "debug" {
		t.Errorf("--log-level=%q", v)
	}
	if v, _ := arg(w, "--auth-ttl"); v != "5m" {
		t.Errorf("worker --auth-ttl=%q, want worker.authTTL", v)
	}
	if v, _ := arg(w, "--auth-grace"); v != "0s" {
		t.Errorf("worker --auth-grace=%q, want worker.authGrace", v)
	}
	if v, _ := arg(w, "--fetch-stall"); v != "45s" {
		t.Errorf("worker --fetch-stall=%q, want worker.fetchStall", v)
	}
	if v, _ := arg(w, "--fetch-timeout"); v != "5m" {
		t.Errorf("worker --fetch-timeout=%q, want worker.fetchTimeout", v)
	}
	var secretEnv []string
	for _, e := range list(w, "env") {
		if str(e, "valueFrom", "secretKeyRef", "name") == "ws" {
			secretEnv = append(secretEnv, str(e, "name"))
		}
	}
	if !slices.Contains(secretEnv, "AWS_ACCESS_KEY_ID") || !slices.Contains(secretEnv, "AWS_SECRET_ACCESS_KEY") {
		t.Errorf("worker.s3Secret: the worker's env from it: %v", secretEnv)
	}
	for _, o := range objs {
		if o.kind() == "ServiceAccount" && str(o, "metadata", "annotations", "eks.amazonaws.com/role-arn") != "arn:x" {
			t.Errorf("ServiceAccount %s lacks serviceAccount.annotations", o.name())
		}
	}
	if str(w, "image") != "reg.example/hoard:v1.2.3" {
		t.Errorf("image %q", str(w, "image"))
	}
	for name, pod := range pods {
		if str(pod, "nodeSelector", "pool") != "gpu" || len(list(pod, "tolerations")) != 1 {
			t.Errorf("%s: nodeSelector/tolerations not applied", name)
		}
	}
}

func TestStorageClasses(t *testing.T) {
	objs := render(t, "--set", "storageClasses[0].name=imagenet,storageClasses[0].bucket=datasets,storageClasses[0].prefix=imagenet,storageClasses[0].credentials.accessKeyID=AK,storageClasses[0].credentials.secretAccessKey=SK,storageClasses[0].parameters.region=eu-west-1,storageClasses[1].name=models,storageClasses[1].bucket=models,storageClasses[1].existingSecret=mine")
	sc := find(objs, "StorageClass", "imagenet")
	if sc == nil || str(sc, "parameters", "bucket") != "datasets" || str(sc, "parameters", "region") != "eu-west-1" ||
		str(sc, "parameters", "csi.storage.k8s.io/node-stage-secret-name") != "imagenet-s3" {
		t.Fatalf("StorageClass imagenet: %v", sc)
	}
	sec := find(objs, "Secret", "imagenet-s3")
	if str(sec, "stringData", "accessKeyID") != "AK" || str(sec, "metadata", "namespace") != "hoard-system" {
		t.Errorf("Secret imagenet-s3: %v", sec)
	}
	if m := find(objs, "StorageClass", "models"); str(m, "parameters", "csi.storage.k8s.io/provisioner-secret-name") != "mine" {
		t.Errorf("StorageClass models: %v", m)
	}
	if find(objs, "Secret", "models-s3") != nil {
		t.Error("a Secret made for a class with an existing one")
	}
}

// TestNetworkPolicy: opt-in; the worker's port admits this release's pods
// and extraFrom; none on the host network.
func TestNetworkPolicy(t *testing.T) {
	if find(render(t), "NetworkPolicy", "hoard-worker") != nil {
		t.Error("a NetworkPolicy by default")
	}
	objs := render(t, "--set", "networkPolicy.enabled=true,networkPolicy.extraFrom[0].namespaceSelector.matchLabels.name=monitoring")
	np := find(objs, "NetworkPolicy", "hoard-worker")
	rules := list(np, "spec", "ingress")
	if len(rules) != 1 || get(list(rules[0], "ports")[0], "port") != float64(7070) || len(list(rules[0], "ports")) != 2 {
		t.Fatalf("worker policy: %v", np)
	}
	from := list(rules[0], "from")
	if len(from) != 2 || str(from[0], "podSelector", "matchLabels", "app.kubernetes.io/instance") != "hoard" ||
		str(from[1], "namespaceSelector", "matchLabels", "name") != "monitoring" {
		t.Errorf("worker policy peers: %v", from)
	}
	if find(objs, "NetworkPolicy", "hoard-coordinator") == nil {
		t.Error("no coordinator policy")
	}
	if find(render(t, "--set", "networkPolicy.enabled=true,hostNetwork=true"), "NetworkPolicy", "hoard-worker") != nil {
		t.Error("a NetworkPolicy with hostNetwork, where it cannot apply")
	}
}

// TestBadValuesFail: values that would make a broken install fail to
// render, naming the value.
func TestBadValuesFail(t *testing.T) {
	cases := map[string]string{
		"coordinator.replicas=2":                                      "coordinator.replicas",
		"coordinator.enabled=false":                                   "worker.enabled needs an etcd",
		"externalEtcd.endpoints[0]=http://e:2379":                     "pick one",
		"coordinator.enabled=false,externalEtcd.endpoints[0]=etcd.db": "externalEtcd.endpoints",
		"coordinator.replicas=3,coordinator.members[0].host=10.0.0.1": "coordinator.members",
		"coordinator.persistence.type=nfs":                            "coordinator.persistence.type",
		"logFormat=xml":                                               "logFormat",
		"worker.authTTL=soon":                                         "worker.authTTL",
		"worker.authGrace=10":                                         "worker.authGrace",
		"worker.fetchStall=forever":                                   "worker.fetchStall",
		"storageClasses[0].name=x":                                    "storageClasses",
		"storageClasses[0].name=x,storageClasses[0].bucket=b,storageClasses[0].credentials.accessKeyID=a": "credentials.secretAccessKey",
	}
	for set, want := range cases {
		t.Run(set, func(t *testing.T) {
			_, err := helm(t, "template", "hoard", chartDir(), "--set", set)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want an error naming %q", err, want)
			}
		})
	}
}

// TestKustomizeTreeIsTheChart: deploy/kubernetes/hoard.yaml is `make
// deploy-manifests`'s output; a chart change without regenerating it fails.
func TestKustomizeTreeIsTheChart(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "kubernetes", "hoard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "--no-print-directory", "deploy-manifests", "HELM="+helmBinary(t), "MANIFESTS=/dev/stdout")
	cmd.Dir = repoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("make deploy-manifests: %v\n%s", err, stderr.String())
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("deploy/kubernetes/hoard.yaml differs from the chart's output: run make deploy-manifests (%s)",
			firstDiff(string(got), string(want)))
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d: chart %q, file %q", i+1, al[i], bl[i])
		}
	}
	return errors.New("one is a prefix of the other").Error()
}
