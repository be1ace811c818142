package cluster_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/routing"
	"hoard.dev/hoard/cachecore/worker"
	"hoard.dev/hoard/internal/metrics"
	"hoard.dev/hoard/tests/testenv"
)

// owner returns the worker that owns the chunk of obj at off, by the same
// routing the client uses.
func owner(t *testing.T, e *env, obj client.Object, off int64) *testenv.WorkerProc {
	t.Helper()
	ws := make([]routing.Worker, len(e.workers))
	for i, w := range e.workers {
		ws[i] = routing.Worker{ID: w.ID}
	}
	tab, err := routing.New(ws)
	if err != nil {
		t.Fatal(err)
	}
	id := obj.ID()
	return e.workers[tab.Owner(id.ChunkHash(off/(64*MiB)))]
}

// TestKillWorkerDuringRead kills -9 the owner of a chunk while a large read
// is under way: the read completes with the bucket's bytes.
func TestKillWorkerDuringRead(t *testing.T) {
	e := newEnv(t, 3, "2GiB")
	want, obj := e.put(t, "big", 320*MiB, 5)
	c := e.client(t, nil)
	victim := owner(t, e, obj, 200*MiB)
	var killed atomic.Bool
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := readAll(ctx, c, obj, func(off int64) {
		if off >= 150*MiB && !killed.Swap(true) {
			victim.Kill(t)
		}
	})
	if err != nil {
		t.Fatalf("read with a worker killed: %v", err)
	}
	if !killed.Load() {
		t.Fatal("the worker was never killed")
	}
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatal("bytes differ from the bucket's after a worker died")
	}
	st := c.Stats()
	t.Logf("killed %s at 150 MiB: %d failovers, %d bucket reads", victim.ID, st.Failovers.Load(), st.BucketReads.Load())
	if st.Failovers.Load() == 0 {
		t.Error("no failover counted, yet the owner of a later chunk was killed")
	}
}

// TestEtcdOutage: with etcd down reads go on; when it is back a new worker is
// picked up.
func TestEtcdOutage(t *testing.T) {
	e := newEnv(t, 3, "1GiB")
	// 1 MiB chunks spread one object over every worker.
	c := e.client(t, func(cfg *client.Config) { cfg.ChunkSize = MiB })
	want, obj := e.put(t, "a", 48*MiB, 1)
	mustReadAll(t, c, obj, want)

	e.etcd.Stop(t)
	want2, obj2 := e.put(t, "b", 16*MiB, 2)
	start := time.Now()
	mustReadAll(t, c, obj, want)
	mustReadAll(t, c, obj2, want2)
	t.Logf("reads with etcd down took %s", time.Since(start))
	if n := len(c.View().Alive); n != 3 {
		t.Errorf("view during the outage has %d live workers, want the last view's 3", n)
	}

	e.etcd.Restart(t)
	fresh := e.addWorker(t, "w-new", "1GiB")
	testenv.WaitFor(t, 30*time.Second, "the client sees the new worker", func() bool {
		return c.View().Alive["w-new"] && len(c.View().Alive) == 4
	})
	want3, obj3 := e.put(t, "c", 64*MiB, 3)
	mustReadAll(t, c, obj3, want3)
	n, err := fresh.Metric(context.Background(), metrics.WorkerRequests.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("new worker served %v requests", n)
	if n == 0 {
		t.Error("the worker that joined after the outage served nothing")
	}
}

// TestBucketDown: with MinIO stopped, cached data is served and uncached
// reads fail quickly with an error that says why.
func TestBucketDown(t *testing.T) {
	e := newEnv(t, 3, "1GiB")
	want, obj := e.put(t, "cached", 40*MiB, 1)
	_, cold := e.put(t, "cold", 8*MiB, 2)
	mustReadAll(t, e.client(t, nil), obj, want)

	e.minio.Stop(t)
	c := e.client(t, nil)
	mustReadAll(t, c, obj, want)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := c.ReadAt(ctx, cold, make([]byte, MiB), 0)
	took := time.Since(start)
	t.Logf("uncached read with the bucket down: %v after %s", err, took)
	if err == nil {
		t.Fatal("uncached read succeeded with the bucket down")
	}
	if ctx.Err() != nil || took > 45*time.Second {
		t.Fatalf("uncached read took %s: it should fail, not hang", took)
	}
	// The test reaches MinIO through a proxy, which answers 502 for it; a
	// bucket reached directly shows "connection refused".
	if msg := err.Error(); !strings.Contains(msg, cold.Source.String()+"/cold") ||
		!(strings.Contains(msg, "502 Bad Gateway") || strings.Contains(msg, "connection refused")) {
		t.Errorf("error %q does not name the object and say its bucket is unreachable", err)
	}
}

// TestCorruptPages flips bytes in every worker's page files: the corrupt
// pages are detected, refetched and the right bytes returned.
func TestCorruptPages(t *testing.T) {
	e := newEnv(t, 3, "1GiB")
	want, obj := e.put(t, "x", 24*MiB, 1)
	mustReadAll(t, e.client(t, nil), obj, want)
	// Pages reach the store behind the reads: wait until all 24 are there.
	for deadline := time.Now().Add(10 * time.Second); sumMetric(t, e.workers, "hoard_pagestore_pages") < 24; {
		if time.Now().After(deadline) {
			t.Fatalf("workers hold %v pages, want 24", sumMetric(t, e.workers, "hoard_pagestore_pages"))
		}
		time.Sleep(20 * time.Millisecond)
	}

	flipped := 0
	for _, w := range e.workers {
		flipped += corruptPages(t, filepath.Join(w.CacheDir, "pages"))
	}
	if flipped < 24 {
		t.Fatalf("corrupted %d pages, want all 24", flipped)
	}
	e.proxy.Reset()
	mustReadAll(t, e.client(t, func(cfg *client.Config) { cfg.HotBytes = -1 }), obj, want)
	corrupt := sumMetric(t, e.workers, metrics.PagestoreCorruptPages.Name())
	t.Logf("%d pages corrupted on disk; %v detected; %d GETs to refetch", flipped, corrupt, e.proxy.GETs("x"))
	if corrupt < 24 {
		t.Errorf("workers detected %v corrupt pages, want 24", corrupt)
	}
	if e.proxy.GETs("x") == 0 {
		t.Error("corrupt pages were not refetched from the bucket")
	}
}

// corruptPages flips one byte in every 1 MiB page slot that holds data and
// returns how many it changed.
func corruptPages(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	files, _ := filepath.Glob(filepath.Join(dir, "slab-*.dat"))
	for _, name := range files {
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		b := make([]byte, 1)
		for off := int64(0); off < st.Size(); off += MiB {
			if _, err := f.ReadAt(b, off+4096); err != nil {
				continue
			}
			b[0] ^= 0xff
			if _, err := f.WriteAt(b, off+4096); err != nil {
				t.Fatal(err)
			}
			n++
		}
		f.Close()
	}
	return n
}

// TestCapacityBound reads far more than a worker may cache: the page stores'
// disk use never exceeds their capacity.
func TestCapacityBound(t *testing.T) {
	const capacity = 48 * MiB
	e := newEnv(t, 3, fmt.Sprint(capacity))
	c := e.client(t, func(cfg *client.Config) { cfg.HotBytes = -1 })
	for i := 0; i < 6; i++ {
		want, obj := e.put(t, fmt.Sprintf("f%d", i), 50*MiB, uint64(i))
		mustReadAll(t, c, obj, want)
		for _, w := range e.workers {
			if du := diskUsage(t, filepath.Join(w.CacheDir, "pages")); du > capacity {
				t.Fatalf("after %d MiB read: worker %s uses %d bytes on disk, capacity %d", (i+1)*50, w.ID, du, capacity)
			}
		}
	}
	evicted := sumMetric(t, e.workers, metrics.PagestoreEvictions.Name())
	used := sumMetric(t, e.workers, metrics.PagestoreUsedBytes.Name())
	t.Logf("300 MiB through 3 x %d MiB: %v evictions, %.1f MiB held", capacity/MiB, evicted, used/MiB)
	if evicted == 0 {
		t.Error("nothing was evicted, yet far more than the capacity was read")
	}
}

func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if info, err := d.Info(); err == nil {
			total += info.Sys().(*syscall.Stat_t).Blocks * 512
		}
		return nil
	})
	return total
}

// TestStoreChecksum: a worker with --verify-store-checksum checks an object
// it fetches whole against the store's MD5 ETag. Bytes damaged between the
// store and the worker are served to nobody and cached nowhere, and the
// read fails (the client does not read around it from the bucket, whose
// bytes it could not check); undamaged, the object is read and cached.
func TestStoreChecksum(t *testing.T) {
	e := newEnv(t, 0, "1GiB")
	e.workers = append(e.workers, testenv.StartWorkerProc(t, testenv.WorkerOptions{
		ID: "w0", Etcd: e.etcd.Endpoints(), Cluster: cluster, S3: e.minio, S3Endpoint: e.proxy.Endpoint(),
		Extra: []string{"--verify-store-checksum"},
	}))
	want, obj := e.put(t, "v/a", 3*MiB+5, 7)
	c := e.client(t, func(cfg *client.Config) { cfg.HotBytes = -1 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	e.proxy.SetFault(testenv.ProxyFault{Flip: true})
	buf := make([]byte, obj.Size)
	_, err := c.ReadAt(ctx, obj, buf, 0)
	t.Logf("read with the bytes damaged on the way from the store: %v", err)
	if !errors.Is(err, worker.ErrStoreChecksum) {
		t.Fatalf("read of damaged bytes: %v, want ErrStoreChecksum", err)
	}
	if n := c.Stats().BucketReads.Load(); n != 0 {
		t.Errorf("the client read the bucket itself %d times after the worker refused its bytes", n)
	}
	if n := sumMetric(t, e.workers, metrics.WorkerStoreChecksumMismatches.Name()); n != 1 {
		t.Errorf("%v checksum mismatches counted, want 1", n)
	}
	if n := sumMetric(t, e.workers, metrics.PagestorePages.Name()); n != 0 {
		t.Errorf("%v pages of the damaged object cached", n)
	}

	e.proxy.SetFault(testenv.ProxyFault{})
	mustReadAll(t, c, obj, want)
	e.proxy.SetFault(testenv.ProxyFault{Flip: true})
	e.proxy.Reset()
	mustReadAll(t, c, obj, want) // cached: the damaging store is not asked
	if n := e.proxy.GETs("v/a"); n != 0 {
		t.Errorf("%d GETs for a verified, cached object", n)
	}
}
