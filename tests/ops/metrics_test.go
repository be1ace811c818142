package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"hoard.dev/hoard/internal/metrics"
	"hoard.dev/hoard/tests/testenv"
)

// dashboardExprs returns every PromQL expression of the Grafana dashboard:
// panel targets (rows included) and template variable queries.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "helm", "hoard", "dashboards", "hoard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var exprs []string
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			exprs = append(exprs, v.Definition)
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("the dashboard has %d queries; parsing went wrong", len(exprs))
	}
	return exprs
}

type panel struct {
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

var metricName = regexp.MustCompile(`\bhoard_[a-z0-9_]+`)

// TestDashboardQueries runs every hoard process with its /metrics served, reads a
// file through a mount, scrapes them all and checks that: every metric the
// Grafana dashboard queries is exported; every hoard metric exported is in
// the one table (internal/metrics), and every metric of the table is
// exported by some process; and the values tell the truth about the read
// (bytes by source, GETs the bucket saw).
func TestDashboardQueries(t *testing.T) {
	testenv.RequireFUSE(t)
	c := startCluster(t)
	data := c.minio.PutRandom(t, c.bucket, "ds/train/a.bin", 12*MiB, 1)
	mountMetrics := testenv.FreeAddr(t)
	mnt, _ := c.mount(t, "ds/", mountMetrics)

	dir := t.TempDir()
	mounterMetrics, csiMetrics := testenv.FreeAddr(t), testenv.FreeAddr(t)
	sock := filepath.Join(dir, "m.sock")
	mounter := testenv.StartHoard(t, "mounter", nil, "mounter", "--socket", sock, "--cache-dir", filepath.Join(dir, "cache"),
		"--cache-size", "1GiB", "--health-addr", mounterMetrics)
	mounter.WaitHTTP(t, "http://"+mounterMetrics+"/metrics", 30*time.Second)
	csiAddr := testenv.FreeAddr(t)
	plugin := testenv.StartHoard(t, "csi", nil, "csi", "--mode", "all", "--endpoint", "tcp://"+csiAddr, "--node-id", "n1",
		"--state-dir", filepath.Join(dir, "state"), "--mounter-socket", sock, "--health-addr", csiMetrics)
	plugin.WaitHTTP(t, "http://"+csiMetrics+"/metrics", 30*time.Second)
	conn, err := grpc.NewClient(csiAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := csi.NewIdentityClient(conn).GetPluginInfo(ctx, &csi.GetPluginInfoRequest{}); err != nil {
		t.Fatalf("GetPluginInfo: %v", err)
	}
	if _, err := csi.NewNodeClient(conn).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{}); err != nil {
		t.Fatalf("NodeGetInfo: %v", err)
	}

	got, err := os.ReadFile(filepath.Join(mnt, "train", "a.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through the mount: %d bytes, %v (want %d, equal)", len(got), err, len(data))
	}

	scrapes := map[string][]testenv.Series{}
	for name, addr := range map[string]string{
		"coordinator": c.coordinatorMetrics, "worker": c.workerMetrics, "worker-listen": c.workers[0].Addr,
		"worker-b": c.workers[1].Addr,
		"mount":    mountMetrics, "mounter": mounterMetrics, "csi": csiMetrics,
	} {
		url, hc := "http://"+addr+metrics.Path, http.DefaultClient
		for _, w := range c.workers {
			if addr == w.Addr { // the data port: mutual TLS
				url, hc = w.URL(metrics.Path), w.HTTP()
			}
		}
		s, err := testenv.ScrapeWith(ctx, hc, url)
		if err != nil {
			t.Fatalf("scrape %s: %v", name, err)
		}
		scrapes[name] = s
	}
	exported := map[string]bool{} // series names
	for name, ss := range scrapes {
		for _, s := range ss {
			exported[s.Name] = true
			if !strings.HasPrefix(s.Name, "hoard_") {
				continue
			}
			if _, ok := metrics.Lookup(s.Name); !ok {
				t.Errorf("%s exports %s, which is not in internal/metrics' table", name, s.Name)
			}
		}
	}
	for _, e := range dashboardExprs(t) {
		for _, m := range metricName.FindAllString(e, -1) {
			if !exported[m] {
				t.Errorf("the dashboard queries %s (in %q), which no running process exports", m, e)
			}
		}
	}
	for _, id := range metrics.All() {
		d := id.Def()
		name := d.Name
		if d.Type == metrics.Histogram {
			name += "_count"
		}
		if !exported[name] {
			t.Errorf("%s is in the table but no process exports it", d.Name)
		}
	}

	// The values: the file came from the workers, none of it from the
	// bucket directly, and the workers' GETs are the GETs MinIO saw.
	m := scrapes["mount"]
	for src, want := range map[string]float64{"worker": float64(len(data)), "bucket": 0, "memory": 0} {
		if v, _ := testenv.Sum(m, metrics.MountReadBytes.Name(), map[string]string{"source": src, "volume": mnt}); v != want {
			t.Errorf("mount read %v bytes from %s, want %v", v, src, want)
		}
	}
	if v, _ := testenv.Sum(m, metrics.MountBypassedBytes.Name(), nil); v != 0 {
		t.Errorf("%v bytes bypassed the cache", v)
	}
	for _, op := range []string{"read", "lookup", "open"} {
		if v, _ := testenv.Sum(m, metrics.MountFuseOpDuration.Name()+"_count", map[string]string{"op": op}); v == 0 {
			t.Errorf("no %s counted", op)
		}
	}
	var gets float64
	for _, w := range []string{"worker", "worker-b"} {
		v, _ := testenv.Sum(scrapes[w], metrics.WorkerBucketRequests.Name(), map[string]string{"op": "get"})
		gets += v
	}
	if seen := c.proxy.GETs("ds/train/a.bin"); gets == 0 || float64(seen) != gets {
		t.Errorf("workers counted %v GETs, the bucket saw %d", gets, seen)
	}
	co := scrapes["coordinator"]
	for labels, want := range map[string]float64{"registered": 2, "alive": 2} {
		if v, _ := testenv.Sum(co, metrics.ClusterWorkers.Name(), map[string]string{"state": labels}); v != want {
			t.Errorf("coordinator: %v workers %s, want %v", v, labels, want)
		}
	}
	for _, id := range []metrics.ID{metrics.CoordinatorUp, metrics.CoordinatorHasLeader} {
		if v, _ := testenv.Sum(co, id.Name(), nil); v != 1 {
			t.Errorf("coordinator: %s = %v, want 1", id.Name(), v)
		}
	}
	if v, _ := testenv.Sum(scrapes["csi"], metrics.CSICallDuration.Name()+"_count",
		map[string]string{"method": "GetPluginInfo", "code": "OK"}); v != 1 {
		t.Errorf("csi: %v GetPluginInfo calls counted, want 1", v)
	}
	for name, role := range map[string]string{"coordinator": "coordinator", "worker": "worker", "mount": "mount", "mounter": "mounter", "csi": "csi-all"} {
		if _, ok := testenv.Sum(scrapes[name], metrics.BuildInfo.Name(), map[string]string{"role": role}); !ok {
			t.Errorf("%s: no %s{role=%q}", name, metrics.BuildInfo.Name(), role)
		}
	}
	if t.Failed() {
		var names []string
		for n := range exported {
			if strings.HasPrefix(n, "hoard_") {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		t.Logf("exported: %s", strings.Join(names, " "))
	}
}
