package faults

import (
	"fmt"
	"testing"
	"time"
)

// testMembership: workers join and leave a cluster under load; the share
// of the data set that moves to a new worker is about 1/N.
func testMembership(t *testing.T, in *infra, rep *report) {
	t.Run("workers join and leave", func(t *testing.T) {
		if len(in.workers) < 5 {
			t.Skip("needs 5 nodes")
		}
		c := in.newCluster(t, clusterOptions{workers: 3})
		var moved []string
		// movedShare reads the data set through a mount and returns the
		// share of the small files fetched since the proxy's last reset
		// (by it or the readers): those whose owner changed since they
		// were cached.
		movedShare := func(t *testing.T) float64 {
			rec := newRecorder()
			c.readAll(t, c.mounts[faultOn], rec)
			if s := rec.summary(); s.failed > 0 || s.wrong > 0 {
				t.Errorf("reading the data set: %v", s)
			}
			gets := in.proxy.GETsByKey()
			n := 0
			for _, o := range in.data.small {
				if gets[o.key] > 0 {
					n++
				}
			}
			return float64(n) / float64(len(in.data.small))
		}
		o := clusterOptions{capacity: "4GiB"}
		c.run(t, rep, scenario{
			fault: "workers join and leave",
			done:  "n4 joins, then n5; n5 leaves (SIGTERM), then n4 (kill -9); the data set read after each",
			inject: func(t *testing.T) {
				for _, n := range in.workers[3:5] {
					in.proxy.Reset()
					c.addWorker(t, n, o)
					time.Sleep(3 * time.Second) // the mounts see it
					share := movedShare(t)
					want := 1 / float64(len(c.workers))
					moved = append(moved, fmt.Sprintf("%s joined: %.1f%% moved (1/%d = %.1f%%)", n.Name, 100*share, len(c.workers), 100*want))
					if share < want/2 || share > want*1.5 {
						t.Errorf("%s joined a cluster of %d: %.1f%% of the small files moved, want about %.1f%%", n.Name, len(c.workers), 100*share, 100*want)
					}
				}
			},
			heal: func(t *testing.T) {
				leaving := []*worker{c.workers[4], c.workers[3]}
				in.proxy.Reset()
				leaving[0].stop()
				time.Sleep(livenessTTL + 2*time.Second)
				leaving[1].kill()
				// Its lease lapses, then the grace before its chunks move.
				time.Sleep(livenessTTL + 12*time.Second)
				share := movedShare(t)
				moved = append(moved, fmt.Sprintf("both left: %.1f%% fetched again", 100*share))
				t.Logf("after n5 and n4 left: %.1f%% of the small files fetched again (their old owners still cache them)", 100*share)
				if share > 0.05 {
					t.Errorf("%.1f%% of the small files fetched again after the new workers left, want about 0: their first owners cache them", 100*share)
				}
			},
			hold:  time.Second,
			bound: 15 * time.Second,
			check: func(t *testing.T, o *outcome) { t.Logf("keys moved: %v", moved) },
		})
		rep.mu.Lock()
		rep.rows[len(rep.rows)-1].note = fmt.Sprint(moved)
		rep.mu.Unlock()
	})
}
