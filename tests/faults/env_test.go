package faults

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/mtls"
	"hoard.dev/hoard/tests/nodes"
	"hoard.dev/hoard/tests/testenv"
)

const (
	MiB    = 1 << 20
	bucket = "data"

	// Ports on every node's own address.
	workerPort  = 7070 // hoard worker: reads, mTLS
	healthPort  = 7071 // hoard worker: /healthz and /metrics, plain HTTP
	mountPort   = 9100 // hoard mount: /metrics
	clientPort  = 2379 // hoard coordinator
	peerPort    = 2380
	minioPort   = 9000
	livenessTTL = 3 * time.Second
)

// suite skips the test unless the fault suite was asked for (make faults).
func suite(t *testing.T) {
	t.Helper()
	if os.Getenv("HOARD_FAULTS") != "1" {
		t.Skip("the fault suite runs with `make faults` (HOARD_FAULTS=1; root, several minutes)")
	}
}

// scale is HOARD_FAULTS_SCALE (default 1): it multiplies data sets and
// durations.
func scale() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("HOARD_FAULTS_SCALE"), 64); err == nil && v > 0 {
		return v
	}
	return 1
}

// infra is what the subtests of one top-level test share: the nodes,
// MinIO behind the proxy, the coordinators, the data set.
type infra struct {
	nodes   *nodes.Cluster
	bin     string
	minio   *testenv.MinIO
	proxy   *testenv.CountingProxy
	coords  []*proc
	etcd    []string // the coordinators' client URLs
	s3Env   []string // credentials, as environment (never flags)
	workers []*nodes.Node
	data    *dataset

	mu struct {
		sync.Mutex
		clusters int
	}
}

// newInfra makes K worker nodes (n1..nK), three coordinator nodes (c1..c3)
// and a node for MinIO (s3), starts the coordinators and MinIO, the proxy
// on the host, and puts data in the bucket.
func newInfra(t *testing.T, k int, data datasetSpec) *infra {
	t.Helper()
	names := []string{"s3", "c1", "c2", "c3"}
	for i := 1; i <= k; i++ {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	stateDir, err := os.MkdirTemp("", "hft-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stateDir) })
	c := nodes.ForTest(t, nodes.Config{Prefix: "hft", Subnet: "10.94.0.0/24", StateDir: stateDir}, names...)
	in := &infra{nodes: c, bin: testenv.HoardBinary(t)}
	for i := 1; i <= k; i++ {
		in.workers = append(in.workers, c.Node(fmt.Sprintf("n%d", i)))
	}
	s3 := c.Node("s3")
	in.minio = testenv.StartMinIOIn(t, fmt.Sprintf("%s:%d", s3.IP, minioPort), func(name string, arg ...string) *exec.Cmd {
		return s3.Command(context.Background(), name, arg...)
	})
	in.minio.MakeBucket(t, bucket)
	in.proxy = testenv.NewCountingProxyOn(t, c.HostIP(), in.minio.Endpoint())
	in.s3Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+in.minio.AccessKey(), "AWS_SECRET_ACCESS_KEY="+in.minio.SecretKey())
	in.startCoordinators(t)
	in.data = putDataset(t, in.minio, data)
	return in
}

// startCoordinators starts a 3-member hoard coordinator (etcd) cluster,
// one member on each of c1..c3, and waits until every member is ready.
func (in *infra) startCoordinators(t *testing.T) {
	t.Helper()
	var peers []string
	cs := []*nodes.Node{in.nodes.Node("c1"), in.nodes.Node("c2"), in.nodes.Node("c3")}
	for _, n := range cs {
		peers = append(peers, fmt.Sprintf("%s=http://%s:%d", n.Name, n.IP, peerPort))
		in.etcd = append(in.etcd, fmt.Sprintf("http://%s:%d", n.IP, clientPort))
	}
	for _, n := range cs {
		in.coords = append(in.coords, startProc(t, n, "coordinator", in.bin, nil,
			"coordinator", "--name", n.Name, "--data-dir", filepath.Join(n.Dir, "coordinator"),
			"--listen-client", fmt.Sprintf("%s:%d", n.IP, clientPort),
			"--listen-peer", fmt.Sprintf("%s:%d", n.IP, peerPort),
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-token", "hft",
			"--log-level", "warn"))
	}
	for i := range cs {
		in.waitCoordinator(t, i)
	}
}

// waitCoordinator waits until member i says it is ready (has a leader).
func (in *infra) waitCoordinator(t *testing.T, i int) {
	t.Helper()
	waitFor(t, 60*time.Second, "coordinator "+in.coords[i].node.Name+" ready", func() error {
		return httpOK(in.etcd[i] + "/readyz")
	})
}

// keepLogs copies every node's logs to a directory that outlives the
// test, if the test failed, and says where.
func (in *infra) keepLogs(t *testing.T) {
	if !t.Failed() {
		return
	}
	dir, err := os.MkdirTemp("", "hft-logs-")
	if err != nil {
		return
	}
	for _, n := range in.nodes.Nodes() {
		files, _ := filepath.Glob(filepath.Join(n.Dir, "logs", "*.log"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				os.WriteFile(filepath.Join(dir, n.Name+"-"+filepath.Base(f)), b, 0o644)
			}
		}
	}
	t.Logf("logs of every node kept in %s", dir)
}

// s3Args are the flags of a hoard process that reaches the bucket (through
// the proxy).
func (in *infra) s3Args() []string {
	return []string{"--s3-endpoint", "http://" + in.proxy.Endpoint(), "--s3-path-style", "--s3-region", "us-east-1"}
}

// cluster is one cache cluster: a worker and a mount on each of the first
// nodes, registered under a name of its own in the coordinators.
type cluster struct {
	in      *infra
	name    string
	workers []*worker
	mounts  []*mount
}

// worker is a hoard worker in a node.
type worker struct {
	*proc
	id       string
	cacheDir string
	health   string // http://IP:healthPort
}

// mount is a hoard mount (cluster mode) in a node.
type mount struct {
	*proc
	dir     string // the mount point, in the node
	root    string // the mount point as the test reaches it
	metrics string // http://IP:mountPort/metrics
}

// clusterOptions adjust a cluster.
type clusterOptions struct {
	workers  int    // default: all worker nodes
	mounts   int    // default: as many as workers
	capacity string // per worker, default 4GiB
	// cacheDir, if set, gives node i's worker its cache dir.
	cacheDir   func(i int, n *nodes.Node) string
	workerArgs []string
	mountArgs  []string
}

// newCluster starts a cache cluster on the infra's nodes and waits until
// every mount sees every worker.
func (in *infra) newCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	in.mu.Lock()
	in.mu.clusters++
	name := fmt.Sprintf("f%d", in.mu.clusters)
	in.mu.Unlock()
	if o.workers == 0 {
		o.workers = len(in.workers)
	}
	if o.mounts == 0 {
		o.mounts = o.workers
	}
	if o.capacity == "" {
		o.capacity = "4GiB"
	}
	c := &cluster{in: in, name: name}
	t.Cleanup(func() { in.keepLogs(t) })
	for i := 0; i < o.workers; i++ {
		c.addWorker(t, in.workers[i], o)
	}
	for i := 0; i < o.mounts; i++ {
		c.addMount(t, in.workers[i], o)
	}
	return c
}

// addWorker starts a worker on n.
func (c *cluster) addWorker(t *testing.T, n *nodes.Node, o clusterOptions) *worker {
	t.Helper()
	dir := filepath.Join(n.Dir, c.name, "worker")
	if o.cacheDir != nil {
		if d := o.cacheDir(len(c.workers), n); d != "" {
			dir = d
		}
	}
	if o.capacity == "" {
		o.capacity = "4GiB"
	}
	tls := mtls.WorkerFiles(testenv.Certs(t))
	args := []string{"worker", "--id", n.Name, "--cache-dir", dir, "--capacity", o.capacity,
		"--listen", fmt.Sprintf("%s:%d", n.IP, workerPort), "--health-addr", fmt.Sprintf("%s:%d", n.IP, healthPort),
		"--etcd", strings.Join(c.in.etcd, ","), "--cluster", c.name, "--liveness-ttl", livenessTTL.String(),
		"--tls-ca", tls.CA, "--tls-cert", tls.Cert, "--tls-key", tls.Key, "--log-level", "info",
		// Clients send their tenants' credentials, which the worker checks
		// with the store (the secure path); nothing else is read.
		"--allow-source", fmt.Sprintf("s3+http://%s/%s", c.in.proxy.Endpoint(), bucket)}
	args = append(append(args, c.in.s3Args()...), o.workerArgs...)
	w := &worker{id: n.Name, cacheDir: dir, health: fmt.Sprintf("http://%s:%d", n.IP, healthPort)}
	w.proc = startProc(t, n, c.name+"-worker", c.in.bin, c.in.s3Env, args...)
	w.waitHealthy(t)
	c.workers = append(c.workers, w)
	return w
}

// waitHealthy waits until the worker answers /healthz.
func (w *worker) waitHealthy(t *testing.T) {
	t.Helper()
	waitFor(t, 30*time.Second, "worker "+w.id+" healthy", func() error {
		if w.exited() {
			return fmt.Errorf("exited: %s", tail(w.logs(), 2000))
		}
		return httpOK(w.health + "/healthz")
	})
}

// restart kills the worker (SIGKILL) and starts it again on the same
// cache dir, and waits until it is healthy.
func (w *worker) restart(t *testing.T) {
	t.Helper()
	w.kill()
	w.start(t)
	w.waitHealthy(t)
}

// metric scrapes one of the worker's metrics (summed over its series
// whose labels include match).
func (w *worker) metric(t *testing.T, name string, match map[string]string) float64 {
	t.Helper()
	return scrape(t, w.health+"/metrics", name, match)
}

// addMount starts a hoard mount of the bucket on n and waits until it
// serves.
func (c *cluster) addMount(t *testing.T, n *nodes.Node, o clusterOptions) *mount {
	t.Helper()
	dir := filepath.Join(n.Dir, c.name, "mnt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"mount", "--etcd", strings.Join(c.in.etcd, ","), "--cluster", c.name,
		"--liveness-ttl", livenessTTL.String(), "--cache-dir", filepath.Join(n.Dir, c.name, "mount"),
		"--metrics-addr", fmt.Sprintf("%s:%d", n.IP, mountPort), "--log-level", "info",
		// Smaller than the small files (65 MiB), larger than a readahead
		// window (32 MiB): reads reach the workers.
		"--hot-cache", "48MiB"}
	args = append(append(append(args, testenv.ClientTLSArgs(t)...), c.in.s3Args()...), o.mountArgs...)
	args = append(args, "s3://"+bucket+"/", dir)
	m := &mount{dir: dir, root: fmt.Sprintf("/proc/%d/root%s", n.Holder, dir),
		metrics: fmt.Sprintf("http://%s:%d/metrics", n.IP, mountPort)}
	m.proc = startProc(t, n, c.name+"-mount", c.in.bin, c.in.s3Env, args...)
	t.Cleanup(func() {
		// A mount that was killed leaves a dead FUSE mount in the node.
		m.stop()
		nodes.Start(t, n, "umount", "umount", "-l", dir)
	})
	deadline := time.Now().Add(60 * time.Second)
	waitFor(t, 60*time.Second, "mount on "+n.Name+" serving", func() error {
		if time.Now().After(deadline.Add(-time.Second)) && !m.exited() {
			// About to give up: have it print its goroutines to its log.
			m.current().Signal(syscall.SIGQUIT)
			time.Sleep(time.Second)
		}
		if m.exited() {
			return fmt.Errorf("exited: %s", tail(m.logs(), 2000))
		}
		if logs := m.logs(); !strings.Contains(logs, "mounted on "+dir) {
			return fmt.Errorf("not mounted yet; its log ends: %s", tail(logs, 6000))
		}
		_, err := os.ReadDir(m.root)
		return err
	})
	c.mounts = append(c.mounts, m)
	return m
}

// proc is a process in a node that a test can kill -9 and start again
// with the same arguments. Its output goes to <node dir>/logs/<name>.log,
// across restarts.
type proc struct {
	// owner is the test that started it first: it is killed when that
	// test ends, whichever (sub)test restarted it.
	owner *testing.T
	node  *nodes.Node
	name  string
	bin   string
	args  []string
	env   []string

	mu struct {
		sync.Mutex
		p *nodes.Proc
	}
}

func startProc(t *testing.T, n *nodes.Node, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{owner: t, node: n, name: name, bin: bin, args: args, env: env}
	p.start(t)
	return p
}

// start starts the process (again). It lives until it is killed or its
// owner ends.
func (p *proc) start(t *testing.T) {
	t.Helper()
	cmd := p.node.Command(context.Background(), p.bin, p.args...)
	if p.env != nil {
		cmd.Env = p.env
	}
	np, err := p.node.Start(p.name, cmd)
	if err != nil {
		t.Fatalf("start %s in %s: %v", p.name, p.node.Name, err)
	}
	p.owner.Cleanup(np.Stop)
	p.mu.Lock()
	p.mu.p = np
	p.mu.Unlock()
}

func (p *proc) current() *nodes.Proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.p
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() { p.current().Stop() }

// stop sends SIGTERM and waits (10 s at most, then SIGKILL).
func (p *proc) stop() {
	np := p.current()
	if np.Signal(syscall.SIGTERM) != nil {
		return
	}
	select {
	case <-np.Done():
	case <-time.After(10 * time.Second):
		np.Stop()
	}
}

// exited reports whether the current run of the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.current().Done():
		return true
	default:
		return false
	}
}

// pid is the process's pid.
func (p *proc) pid() int { return p.current().Pid() }

// logs returns all the process wrote, every run of it.
func (p *proc) logs() string { return p.current().Logs() }

// waitFor retries f until it returns nil or d has passed, then fails the
// test with f's last error.
func waitFor(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var plainHTTP = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// httpOK is nil if GET url answers 200.
func httpOK(url string) error {
	resp, err := plainHTTP.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// scrape returns the sum of the series of metric name whose labels
// include match, read from url; the test fails if there is none.
func scrape(t testing.TB, url, name string, match map[string]string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	series, err := testenv.Scrape(ctx, url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	v, ok := testenv.Sum(series, name, match)
	if !ok {
		t.Fatalf("scrape %s: no series %s%v", url, name, match)
	}
	return v
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
