package status

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/membership"
)

// TestRingShares: shares follow the weights of the live workers and add up
// to 1; a worker that is not alive owns nothing.
func TestRingShares(t *testing.T) {
	v := membership.View{
		Registered: []membership.Member{{ID: "a", Weight: 1}, {ID: "b", Weight: 3}, {ID: "c", Weight: 1}},
		Alive:      map[string]bool{"a": true, "b": true},
	}
	s := ringShares(v)
	if math.Abs(s["a"]+s["b"]-1) > 1e-9 || s["c"] != 0 {
		t.Fatalf("shares %v", s)
	}
	if math.Abs(s["b"]-0.75) > 0.02 {
		t.Errorf("weight 3 of 4 owns %.3f of the ring, want about 0.75", s["b"])
	}
	if len(ringShares(membership.View{})) != 0 {
		t.Error("an empty cluster has shares")
	}
}

func TestJudge(t *testing.T) {
	now := time.Now()
	healthy := &Coordinator{Cluster: "c", Healthy: true}
	for _, tc := range []struct {
		name  string
		r     Report
		state string
		says  string
	}{
		{"all well", Report{Coordinator: healthy, Workers: []Worker{{ID: "w", Alive: true, Reachable: true}},
			Node: &Node{Reachable: true, Volumes: []Volume{{VolumeID: "v"}}}}, OK, ""},
		{"worker down", Report{Coordinator: healthy, Workers: []Worker{{ID: "w", Alive: true, Reachable: true}, {ID: "x"}}},
			Degraded, "worker x"},
		{"no live worker", Report{Coordinator: healthy, Workers: []Worker{{ID: "x"}}}, Down, "no live worker"},
		{"coordinator unreachable", Report{Coordinator: &Coordinator{Cluster: "c",
			Endpoints: []membership.EndpointStatus{{Endpoint: "e", Error: "connection refused"}}}}, Degraded, "connection refused"},
		{"no leader", Report{Coordinator: &Coordinator{Cluster: "c",
			Endpoints: []membership.EndpointStatus{{Endpoint: "e"}}}, Workers: []Worker{{ID: "w", Alive: true, Reachable: true}}}, Degraded, "no leader"},
		{"bypass", Report{Node: &Node{Reachable: true, Volumes: []Volume{{VolumeID: "v", Bypassing: true,
			LastBypass: &now, BypassCause: "no cache worker is alive"}}}}, Degraded, "v bypasses the cache"},
		{"mounter down", Report{Node: &Node{MounterSocket: "/s", Error: "refused"}}, Degraded, "mounter at /s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.judge()
			if tc.r.Problems == nil {
				t.Error("Problems is nil: JSON null, not []")
			}
			if tc.r.State != tc.state || !strings.Contains(strings.Join(tc.r.Problems, "\n"), tc.says) {
				t.Errorf("state %s, problems %q; want %s saying %q", tc.r.State, tc.r.Problems, tc.state, tc.says)
			}
		})
	}
}

// TestWorkerStatusBounded: a worker's status answer without end is read
// up to maxStatusBytes, then refused.
func TestWorkerStatusBounded(t *testing.T) {
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Write([]byte(`{"id":"`))
		for range 64 { // 64 MiB
			n, err := rw.Write(bytes.Repeat([]byte("x"), 1<<20))
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	m := membership.Member{ID: "w", Addr: strings.TrimPrefix(srv.URL, "http://")}
	if _, err := workerStatus(context.Background(), srv.Client(), false, m); err == nil {
		t.Fatal("an endless status answer was taken")
	}
	srv.CloseClientConnections()
	srv.Close()
	if n := sent.Load(); n > 32<<20 {
		t.Errorf("the worker could send %d MiB of status before the client hung up", n>>20)
	}
}
