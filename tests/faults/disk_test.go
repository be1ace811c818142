package faults

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"hoard.dev/hoard/tests/nodes"
	"hoard.dev/hoard/tests/testenv"
)

// testDiskFaults: a worker's cache disk fails (full, read-only, I/O
// errors), and pages are damaged on disk while workers run and while one
// is down; a worker restarted serves its pages again.
func testDiskFaults(t *testing.T, in *infra, rep *report) {
	victimNode := in.workers[faultOn]
	for _, f := range []struct {
		name, fault, done string
		metric            string
		inject            func(*testenv.Disk) error
	}{
		{"disk full", "worker's cache disk full", "n3's cache disk (256 MiB ext4 on a loop device) filled up while misses were being cached",
			"full", func(d *testenv.Disk) error { return d.Fill(0) }},
		{"disk read-only", "worker's cache disk read-only", "n3's cache disk turned read-only by the kernel (ext4 error, errors=remount-ro)",
			"read_only", func(d *testenv.Disk) error { return d.SetReadOnly() }},
		{"disk I/O errors", "worker's cache disk failing (EIO)", "n3's cache disk shut down (ext4 shutdown ioctl): every read and write fails with EIO",
			"io_error", func(d *testenv.Disk) error { return d.Fail() }},
	} {
		t.Run(f.name, func(t *testing.T) {
			disk := nodeDisk(t, victimNode, 256<<20)
			c := in.newCluster(t, clusterOptions{workers: 3, cacheDir: func(i int, n *nodes.Node) string {
				if n == victimNode {
					return filepath.Join(disk.Dir, "cache")
				}
				return ""
			}})
			victim := c.workers[faultOn]
			c.run(t, rep, scenario{
				fault: f.fault, done: f.done + "; readers from cold, and 13 objects never read before read during the fault, so that misses are written", cold: true,
				inject: func(t *testing.T) {
					must(t, f.inject(disk))
					// The readers' data set may be cached whole within the 5 s
					// before the fault (then nothing is written to the failing
					// disk): objects never read before are, wherever n3 owns
					// their chunk.
					for _, o := range in.data.cold[3:] {
						if _, err := probeRead(c.mounts[smallOn], o); err != nil {
							t.Errorf("read %s, never read before, with %s's disk failing: %v", o.key, victimNode.Name, err)
						}
					}
				},
				bound: 20 * time.Second,
				check: func(t *testing.T, o *outcome) {
					if victim.exited() {
						t.Fatalf("the worker with the failing disk exited: %s", tail(victim.logs(), 3000))
					}
					degraded := victim.metric(t, "hoard_pagestore_degraded", map[string]string{"fault": f.metric})
					errs := victim.metric(t, "hoard_pagestore_disk_errors_total", nil)
					bypassed := victim.metric(t, "hoard_pagestore_bypassed_total", nil)
					t.Logf("n3: hoard_pagestore_degraded{fault=%q} %v, %v disk errors, %v pages past the disk", f.metric, degraded, errs, bypassed)
					if degraded != 1 {
						t.Errorf("hoard_pagestore_degraded{fault=%q} = %v, want 1", f.metric, degraded)
					}
					if bypassed == 0 {
						t.Error("no page went past the failing disk: the worker did not pass through")
					}
					if line := logLine(victim.logs(), "page store disk failing"); line == "" {
						t.Error("the worker did not log that its disk fails")
					} else {
						t.Logf("n3 logged: %s", line)
					}
				},
			})
		})
	}

	t.Run("pages damaged while running", func(t *testing.T) {
		c := in.newCluster(t, clusterOptions{workers: 3})
		damaged := 0
		c.run(t, rep, scenario{
			fault: "cached pages damaged on disk, workers running",
			done:  "a bit flipped in every 2nd cached page and the second half of every 7th zeroed, on every worker, under readers",
			inject: func(t *testing.T) {
				in.proxy.Reset()
				for _, w := range c.workers {
					damaged += damage(t, w, testenv.FlipBit, 2) + damage(t, w, testenv.TearPage, 7)
				}
			},
			bound: 15 * time.Second,
			check: func(t *testing.T, o *outcome) {
				var detected float64
				for _, w := range c.workers {
					detected += w.metric(t, "hoard_pagestore_corrupt_pages_total", nil)
				}
				t.Logf("%d pages damaged, %v detected and dropped, %d GETs to fetch them again", damaged, detected, in.proxy.TotalGETs())
				if damaged == 0 || detected == 0 {
					t.Errorf("%d pages damaged, %v detected", damaged, detected)
				}
			},
		})
	})

	t.Run("pages torn across a restart", func(t *testing.T) {
		c := in.newCluster(t, clusterOptions{workers: 3})
		victim := c.workers[faultOn]
		damaged := 0
		c.run(t, rep, scenario{
			fault: "cached pages torn across a restart",
			done:  "n3's worker killed; while down, every 3rd page torn, every 5th record torn, every 4th page a bit flipped; restarted after 20 s",
			inject: func(t *testing.T) {
				victim.kill()
				damaged = damage(t, victim, testenv.TearPage, 3) + damage(t, victim, testenv.TearRecord, 5) +
					damage(t, victim, testenv.FlipBit, 4)
			},
			heal:  func(t *testing.T) { victim.start(t); victim.waitHealthy(t) },
			bound: 15 * time.Second,
			check: func(t *testing.T, o *outcome) {
				detected := victim.metric(t, "hoard_pagestore_corrupt_pages_total", nil)
				t.Logf("%d pages damaged while n3 was down; after its restart %v detected on read (torn records are dropped on start: %s)",
					damaged, detected, logLine(victim.logs(), "page store opened"))
				if damaged == 0 || detected == 0 {
					t.Errorf("%d pages damaged, %v detected", damaged, detected)
				}
			},
		})
	})

	t.Run("workers restarted", func(t *testing.T) {
		c := in.newCluster(t, clusterOptions{workers: 3})
		var gets int64
		c.run(t, rep, scenario{
			fault: "every worker restarted (kill -9), one at a time",
			done:  "each worker killed and started again on its cache dir, 5 s apart; then the data set read again",
			inject: func(t *testing.T) {
				for _, w := range c.workers {
					w.kill()
					w.start(t)
					w.waitHealthy(t)
					time.Sleep(5 * time.Second)
				}
			},
			bound: 15 * time.Second,
			check: func(t *testing.T, o *outcome) {
				in.proxy.Reset()
				rec := newRecorder()
				c.readAll(t, c.mounts[faultOn], rec)
				gets = in.proxy.TotalGETs()
				t.Logf("the data set read again through %s after the restarts: %v, %d GETs", c.mounts[faultOn].node.Name, rec.summary(), gets)
				if gets != 0 {
					t.Errorf("restarted workers fetched %d GETs again, want 0: their pages should be served", gets)
				}
			},
		})
	})
}

// nodeDisk makes a loop-mounted ext4 disk of size bytes in node n's mount
// namespace.
func nodeDisk(t *testing.T, n *nodes.Node, size int64) *testenv.Disk {
	t.Helper()
	return testenv.NewDisk(t, filepath.Join(n.Dir, fmt.Sprintf("disk-%d", time.Now().UnixNano())), testenv.DiskOptions{
		Size:    size,
		Command: func(name string, arg ...string) *exec.Cmd { return n.Command(context.Background(), name, arg...) },
		Root:    fmt.Sprintf("/proc/%d/root", n.Holder),
	})
}

// damage damages every every-th page of w's page store as how says.
func damage(t *testing.T, w *worker, how testenv.PageDamage, every int) int {
	t.Helper()
	n, err := testenv.DamagePages(filepath.Join(w.cacheDir, "pages"), how, every)
	if err != nil {
		t.Fatalf("damage pages of %s: %v", w.id, err)
	}
	return n
}
