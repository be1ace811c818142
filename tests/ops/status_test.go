package ops_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hoard.dev/hoard/internal/metrics"
	"hoard.dev/hoard/internal/status"
	"hoard.dev/hoard/tests/testenv"
)

// hoardStatus runs `hoard status -o json` as an operator would in the
// mounter's pod: only the mounter's socket; the cluster, and the client
// certificate for the workers' mutual TLS, are the mounter's.
func hoardStatus(t *testing.T, socket string) *status.Report {
	t.Helper()
	out, err := exec.Command(testenv.HoardBinary(t), "status", "-o", "json", "--mounter-socket", socket).Output()
	if err != nil {
		t.Fatalf("hoard status: %v\n%s", err, out)
	}
	var r status.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("hoard status -o json: %v\n%s", err, out)
	}
	return &r
}

func volume(r *status.Report, id string) *status.Volume {
	if r.Node == nil {
		return nil
	}
	for i := range r.Node.Volumes {
		if r.Node.Volumes[i].VolumeID == id {
			return &r.Node.Volumes[i]
		}
	}
	return nil
}

// TestStatusAndBypass: hoard status reports the cluster (coordinator,
// workers with their share of the ring) and the node's volumes with their
// traffic by source. A volume whose cache cluster's workers cannot read the
// bucket (here: a worker without credentials for it) still reads right,
// from the bucket; the bypass is counted, logged once with its cause, and
// hoard status says degraded. A worker killed makes it degraded
// too.
func TestStatusAndBypass(t *testing.T) {
	testenv.RequireFUSE(t)
	c := startCluster(t)
	data := c.minio.PutRandom(t, c.bucket, "ds/a.bin", 12*MiB, 2)
	n := c.startNode(t)
	good := n.stage(t, "vol-good", "ds", "")
	if got, err := os.ReadFile(filepath.Join(good, "a.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through vol-good: %d bytes, %v", len(got), err)
	}

	r := hoardStatus(t, n.socket)
	if r.State != status.OK || len(r.Problems) != 0 {
		t.Errorf("state %s, problems %q; want ok", r.State, r.Problems)
	}
	if r.Coordinator == nil || !r.Coordinator.Healthy || r.Coordinator.Cluster != "default" {
		t.Errorf("coordinator %+v", r.Coordinator)
	}
	var share float64
	for _, w := range r.Workers {
		if !w.Alive || !w.Reachable || w.RingShare < 0.3 || w.RingShare > 0.7 {
			t.Errorf("worker %+v: want alive, reachable, about half the ring", w)
		}
		share += w.RingShare
	}
	if len(r.Workers) != 2 || math.Abs(share-1) > 1e-9 {
		t.Errorf("%d workers, ring shares add up to %v", len(r.Workers), share)
	}
	v := volume(r, "vol-good")
	if v == nil || v.ReadBytes["worker"] != int64(len(data)) || v.ReadBytes["bucket"] != 0 || v.BypassedBytes != 0 {
		t.Fatalf("vol-good in status: %+v; want %d bytes from workers, none from the bucket", v, len(data))
	}

	// A cache cluster whose only worker cannot read the bucket: its
	// operator allowed another endpoint only.
	testenv.StartWorkerProc(t, testenv.WorkerOptions{ID: "w-nocreds", Etcd: []string{c.etcd}, Cluster: "nocreds",
		Allow: []string{"s3+https://elsewhere.invalid/*"}})
	bad := n.stage(t, "vol-bad", "ds", "nocreds")
	if got, err := os.ReadFile(filepath.Join(bad, "a.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through vol-bad: %d bytes, %v (a bypassing read must still be right)", len(got), err)
	}
	r = hoardStatus(t, n.socket)
	v = volume(r, "vol-bad")
	if v == nil || !v.Bypassing || v.BypassedBytes < int64(len(data)) || v.ReadBytes["bucket"] != int64(len(data)) {
		t.Fatalf("vol-bad in status: %+v; want bypassing, %d bytes from the bucket", v, len(data))
	}
	if !strings.Contains(v.BypassCause, "could not read the bucket") || !strings.Contains(v.BypassCause, "access denied") {
		t.Errorf("bypass cause %q does not say what is wrong", v.BypassCause)
	}
	if r.State != status.Degraded || !strings.Contains(strings.Join(r.Problems, "\n"), "vol-bad bypasses the cache") {
		t.Errorf("state %s, problems %q; want degraded naming vol-bad", r.State, r.Problems)
	}
	// 12 MiB went to the bucket in several fetches; one warning a minute.
	if got := strings.Count(n.mounter.Logs(), "cache bypassed"); got != 1 {
		t.Errorf("the mounter warned %d times about the bypass, want once per minute:\n%s", got, n.mounter.Logs())
	}
	ss, err := testenv.Scrape(t.Context(), "http://"+n.mounterMetrics+metrics.Path)
	if err != nil {
		t.Fatal(err)
	}
	for vol, min := range map[string]float64{"vol-bad": float64(len(data)), "vol-good": 0} {
		got, ok := testenv.Sum(ss, metrics.MountBypassedBytes.Name(), map[string]string{"volume": vol})
		if !ok || got < min || (min == 0 && got != 0) {
			t.Errorf("%s{volume=%q} = %v (found %v), want %v", metrics.MountBypassedBytes.Name(), vol, got, ok, min)
		}
	}

	// A worker of the node's cluster dies.
	c.workers[1].Kill(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = hoardStatus(t, n.socket)
		if strings.Contains(strings.Join(r.Problems, "\n"), "worker w-b") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after killing w-b: %s %q", r.State, r.Problems)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r.State != status.Degraded {
		t.Errorf("state %s with a worker down, want degraded", r.State)
	}
}
