package metrics

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/metrics.md")

// TestNaming: every metric follows Prometheus naming: a hoard_ prefix,
// snake case, the unit as suffix, _total for counters and only for them,
// labels that are not reserved, a help text, a known component, and no name
// twice.
func TestNaming(t *testing.T) {
	known := map[string]bool{}
	for _, c := range components() {
		known[c[0]] = true
	}
	snake := regexp.MustCompile(`^hoard_[a-z][a-z0-9_]*[a-z0-9]$`)
	seen := map[string]bool{}
	for _, id := range All() {
		d := id.Def()
		if d.Name == "" {
			t.Errorf("metric %d has no definition", id)
			continue
		}
		if !snake.MatchString(d.Name) {
			t.Errorf("%s: want hoard_ and snake case", d.Name)
		}
		if seen[d.Name] {
			t.Errorf("%s defined twice", d.Name)
		}
		seen[d.Name] = true
		base := d.Name
		if d.Type == Counter {
			var ok bool
			if base, ok = strings.CutSuffix(d.Name, "_total"); !ok {
				t.Errorf("%s: a counter's name ends in _total", d.Name)
			}
		} else if strings.HasSuffix(d.Name, "_total") {
			t.Errorf("%s: only counters end in _total", d.Name)
		}
		if d.Unit != "" && !strings.HasSuffix(base, "_"+d.Unit) {
			t.Errorf("%s: the unit %q must be the name's suffix", d.Name, d.Unit)
		}
		for _, u := range []string{"bytes", "seconds"} {
			if strings.HasSuffix(base, "_"+u) && d.Unit != u {
				t.Errorf("%s: name ends in _%s but the unit is %q", d.Name, u, d.Unit)
			}
		}
		if d.Type == Histogram && d.Unit != "seconds" {
			t.Errorf("%s: histograms here are latencies in seconds", d.Name)
		}
		if len(d.Help) < 10 || !strings.HasSuffix(d.Help, ".") {
			t.Errorf("%s: help %q should be a sentence", d.Name, d.Help)
		}
		if !known[d.Component] {
			t.Errorf("%s: unknown component %q", d.Name, d.Component)
		}
		for _, l := range d.Labels {
			if l == "le" || l == "quantile" || strings.HasPrefix(l, "__") || l == "job" || l == "instance" {
				t.Errorf("%s: label %q is reserved or set by Prometheus", d.Name, l)
			}
		}
		if got, ok := Lookup(d.Name); !ok || got != id {
			t.Errorf("Lookup(%s) = %d, %v", d.Name, got, ok)
		}
	}
	if _, ok := Lookup("hoard_mount_fuse_op_duration_seconds_bucket"); !ok {
		t.Error("Lookup does not find a histogram's _bucket series")
	}
	if _, ok := Lookup("hoard_no_such_metric"); ok {
		t.Error("Lookup found a metric that is not in the table")
	}
}

// TestDoc fails when docs/metrics.md and the table disagree.
func TestDoc(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "metrics.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	before, rest, ok1 := strings.Cut(doc, DocBegin)
	gen, after, ok2 := strings.Cut(rest, DocEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s: the markers %q and %q are missing", path, DocBegin, DocEnd)
	}
	want := Markdown()
	if gen == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(before+DocBegin+want+DocEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", path)
		return
	}
	t.Errorf("%s does not match internal/metrics/table.go; run: go test ./internal/metrics -update", path)
	for _, l := range strings.Split(want, "\n") {
		if !strings.Contains(gen, l) {
			t.Logf("missing or different in the doc: %s", l)
		}
	}
}

func TestLatency(t *testing.T) {
	var h Latency
	h.Observe(30 * time.Microsecond) // first bucket
	h.Observe(time.Millisecond)      // exactly a bound: that bucket
	h.Observe(2 * time.Minute)       // +Inf
	count, sum, buckets := h.Snapshot()
	if count != 3 || h.Count() != 3 {
		t.Fatalf("count %d (Count %d), want 3", count, h.Count())
	}
	if want := (30*time.Microsecond + time.Millisecond + 2*time.Minute).Seconds(); sum != want {
		t.Errorf("sum %v, want %v", sum, want)
	}
	for bound, n := range map[float64]uint64{50e-6: 1, 500e-6: 1, 1e-3: 2, 60: 2} {
		if buckets[bound] != n {
			t.Errorf("bucket le=%v: %d, want %d", bound, buckets[bound], n)
		}
	}
	if len(buckets) != len(LatencyBuckets()) {
		t.Errorf("%d buckets, want %d", len(buckets), len(LatencyBuckets()))
	}
}

// testCollector emits a few metrics through a Set, as collectors do.
type testCollector struct {
	set *Set
	h   *Latency
}

func (c testCollector) Describe(ch chan<- *prometheus.Desc) { c.set.Describe(ch) }
func (c testCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.set.Emit(ch)
	e.Value(MountReadBytes, 42, "vol-1", SourceWorker)
	e.Value(MountVolumes, 1)
	e.Histogram(MountFuseOpDuration, []*Latency{c.h, c.h}, "vol-1", FuseRead)
}

// TestServe serves a registry with a collector and reads it back as
// Prometheus would.
func TestServe(t *testing.T) {
	reg := NewRegistry("test", "v0")
	h := &Latency{}
	h.Observe(3 * time.Millisecond)
	reg.MustRegister(testCollector{set: NewSet(MountReadBytes, MountVolumes, MountFuseOpDuration), h: h})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := Ops{Gatherer: reg}.Serve(ctx, "--metrics-addr", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + Path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`hoard_build_info{role="test",version="v0"} 1`,
		`hoard_mount_read_bytes_total{source="worker",volume="vol-1"} 42`,
		`hoard_mount_volumes 1`,
		`hoard_mount_fuse_op_duration_seconds_bucket{op="read",volume="vol-1",le="0.0025"} 0`,
		`hoard_mount_fuse_op_duration_seconds_bucket{op="read",volume="vol-1",le="0.005"} 2`, // summed
		`hoard_mount_fuse_op_duration_seconds_count{op="read",volume="vol-1"} 2`,
		`# TYPE hoard_mount_read_bytes_total counter`,
		`go_goroutines `,
		`process_cpu_seconds_total `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
}

// TestOpsHandler: /readyz follows the readiness check, /healthz does not,
// and /metrics serves the process's metrics.
func TestOpsHandler(t *testing.T) {
	var readyErr error
	reg := NewRegistry("mounter", "v0")
	mux := Ops{Gatherer: reg, Ready: func(context.Context) error { return readyErr }}.Handler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz when ready: %d", code)
	}
	readyErr = errors.New("mounter not reachable")
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "mounter not reachable") {
		t.Errorf("/readyz when not ready: %d %q", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz (liveness does not depend on readiness): %d", code)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") ||
		!strings.Contains(body, `hoard_build_info{role="mounter"`) {
		t.Errorf("/metrics: %d %q", code, body)
	}
	// Without a check, ready whenever it answers.
	rec := httptest.NewRecorder()
	Ops{Gatherer: reg}.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("/readyz without a check: %d", rec.Code)
	}
}

// BenchmarkLatencyObserve is what timing one FUSE operation costs (time.Now
// twice and Observe), from many goroutines at once as FUSE serves them.
func BenchmarkLatencyObserve(b *testing.B) {
	var h Latency
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			h.Since(start)
		}
	})
}
