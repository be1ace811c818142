// Package cluster_test runs the cache core as it runs in production: worker
// processes (`hoard worker`) registered in a real etcd, a real MinIO behind a
// counting proxy, and clients in the test process.
package cluster_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/internal/metrics"
	"hoard.dev/hoard/tests/testenv"
)

const (
	bucket  = "data"
	cluster = "test"
	MiB     = 1 << 20
)

// env is one cache cluster under test.
type env struct {
	minio   *testenv.MinIO
	proxy   *testenv.CountingProxy
	etcd    *testenv.Etcd
	workers []*testenv.WorkerProc
	s3      ufs.S3Config // through the proxy
}

func newEnv(t *testing.T, workers int, capacity string) *env {
	t.Helper()
	e := &env{minio: testenv.StartMinIO(t)}
	e.minio.MakeBucket(t, bucket)
	e.proxy = testenv.NewCountingProxy(t, e.minio.Endpoint())
	e.etcd = testenv.StartEtcd(t)
	e.s3 = e.minio.S3Config()
	e.s3.Endpoint = e.proxy.Endpoint()
	for i := 0; i < workers; i++ {
		e.addWorker(t, fmt.Sprintf("w%d", i), capacity)
	}
	return e
}

func (e *env) addWorker(t *testing.T, id, capacity string) *testenv.WorkerProc {
	t.Helper()
	w := testenv.StartWorkerProc(t, testenv.WorkerOptions{
		ID: id, Etcd: e.etcd.Endpoints(), Cluster: cluster, Capacity: capacity,
		S3: e.minio, S3Endpoint: e.proxy.Endpoint(),
	})
	e.workers = append(e.workers, w)
	return w
}

// client returns a client of the cluster that sees all workers alive.
func (e *env) client(t *testing.T, tune func(*client.Config)) *server.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := server.ClientConfig{
		Etcd: membership.EtcdConfig{Endpoints: e.etcd.Endpoints(), Cluster: cluster},
		S3:   e.s3,
		TLS:  testenv.ClientTLS(t),
	}
	if tune != nil {
		tune(&cfg.Client)
	}
	c, err := server.NewClient(ctx, cfg)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Open(ctx, ufs.Location{Scheme: "s3", Bucket: bucket}, e.s3); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("client sees %d live workers", len(e.workers)), func() bool {
		return len(c.View().Alive) == len(e.workers)
	})
	return c
}

func (e *env) put(t *testing.T, key string, size int64, seed uint64) ([]byte, client.Object) {
	t.Helper()
	data := testenv.RandomBytes(size, seed)
	version := e.minio.Put(t, bucket, key, data)
	return data, client.Object{Source: objid.S3(e.proxy.Endpoint(), false, bucket), Key: key, Version: version, Size: size}
}

// readAll reads obj sequentially, as a file reader would, in 1 MiB reads.
func readAll(ctx context.Context, c *server.Client, obj client.Object, onProgress func(int64)) ([]byte, error) {
	r := c.NewReader(obj)
	out := make([]byte, obj.Size)
	for off := int64(0); off < obj.Size; {
		n, err := r.ReadAt(ctx, out[off:min(off+MiB, obj.Size)], off)
		off += int64(n)
		if onProgress != nil {
			onProgress(off)
		}
		if err != nil && !(errors.Is(err, io.EOF) && off == obj.Size) {
			return out[:off], err
		}
	}
	return out, nil
}

func mustReadAll(t *testing.T, c *server.Client, obj client.Object, want []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got, err := readAll(ctx, c, obj, nil)
	if err != nil {
		t.Fatalf("read %s: %v", obj.Key, err)
	}
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("read %s: bytes differ from the bucket's", obj.Key)
	}
}

func sumMetric(t *testing.T, ws []*testenv.WorkerProc, name string) float64 {
	t.Helper()
	var sum float64
	for _, w := range ws {
		v, err := w.Metric(context.Background(), name)
		if err != nil {
			t.Fatalf("worker %s: %v", w.ID, err)
		}
		sum += v
	}
	return sum
}

// TestReadPath covers what a healthy cluster must do: byte-exact reads of
// every size, no second GET for cached data, one GET per range however many
// clients ask, and new bytes after an overwrite.
func TestReadPath(t *testing.T) {
	e := newEnv(t, 3, "2GiB")
	ctx := context.Background()

	sizes := []int64{0, 1, MiB - 1, MiB, 300 * MiB}
	objs := make([]client.Object, len(sizes))
	data := make([][]byte, len(sizes))
	for i, n := range sizes {
		data[i], objs[i] = e.put(t, fmt.Sprintf("size/%d", n), n, uint64(i))
	}

	t.Run("sequential reads equal the bucket", func(t *testing.T) {
		c := e.client(t, nil)
		for i := range objs {
			mustReadAll(t, c, objs[i], data[i])
		}
	})

	t.Run("random ranges equal the bucket", func(t *testing.T) {
		c := e.client(t, func(cfg *client.Config) { cfg.HotBytes = -1 })
		r := rand.New(rand.NewPCG(7, 7))
		big, want := objs[4], data[4]
		for i := 0; i < 200; i++ {
			off := r.Int64N(big.Size)
			n := min(r.Int64N(9*MiB)+1, big.Size-off)
			buf := make([]byte, n)
			got, err := c.ReadAt(ctx, big, buf, off)
			if err != nil || int64(got) != n {
				t.Fatalf("ReadAt(%d, %d) = %d, %v", off, n, got, err)
			}
			if !bytes.Equal(buf, want[off:off+n]) {
				t.Fatalf("ReadAt(%d, %d): bytes differ", off, n)
			}
		}
		// At and past the end.
		if n, err := c.ReadAt(ctx, big, make([]byte, 10), big.Size-4); n != 4 || err != io.EOF {
			t.Errorf("read across the end = %d, %v; want 4, EOF", n, err)
		}
		if n, err := c.ReadAt(ctx, big, make([]byte, 10), big.Size); n != 0 || err != io.EOF {
			t.Errorf("read at the end = %d, %v; want 0, EOF", n, err)
		}
	})

	t.Run("second read makes no GET", func(t *testing.T) {
		e.proxy.Reset()
		c := e.client(t, func(cfg *client.Config) { cfg.HotBytes = -1 })
		for i := range objs {
			mustReadAll(t, c, objs[i], data[i])
		}
		if n := e.proxy.TotalGETs(); n != 0 {
			t.Errorf("second read of cached data made %d GETs on the bucket, want 0", n)
		}
		if n := c.Stats().BucketReads.Load(); n != 0 {
			t.Errorf("client read the bucket directly %d times, want 0", n)
		}
	})

	t.Run("16 clients, one cold chunk, one fetch", func(t *testing.T) {
		want, obj := e.put(t, "cold/chunk", 64*MiB, 99)
		e.proxy.Reset()
		before := sumMetric(t, e.workers, metrics.WorkerFetchedBytes.Name())
		clients := make([]*server.Client, 16)
		for i := range clients {
			clients[i] = e.client(t, func(cfg *client.Config) {
				cfg.HotBytes = -1
				// 16 clients decrypting at once on 2 shared cores: a
				// starved process can miss a 2 s connect deadline, and a
				// failover fetches the chunk again.
				cfg.DialTimeout = 15 * time.Second
			})
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(clients))
		start := make(chan struct{})
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				buf := make([]byte, obj.Size)
				if _, err := c.ReadAt(ctx, obj, buf, 0); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf, want) {
					errs <- errors.New("bytes differ")
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		fetched := sumMetric(t, e.workers, metrics.WorkerFetchedBytes.Name()) - before
		gets := e.proxy.GETs("cold/chunk")
		var failovers, direct int64
		for _, c := range clients {
			failovers += c.Stats().Failovers.Load()
			direct += c.Stats().BucketReads.Load()
		}
		t.Logf("16 clients: %d GETs, %.0f MiB fetched from the bucket by workers; %d failovers, %d direct bucket reads",
			gets, fetched/MiB, failovers, direct)
		if fetched != 64*MiB {
			for _, w := range e.workers {
				t.Logf("worker %s:\n%s", w.ID, w.Logs())
			}
			t.Errorf("workers fetched %.0f bytes of a 64 MiB chunk; want each byte once", fetched)
		}
		if gets != 4 { // 64 MiB in ranged GETs of 16 MiB (client.Config.RequestBytes)
			t.Errorf("%d GETs on the bucket, want 4 (one per 16 MiB range)", gets)
		}
	})

	t.Run("overwritten object reads new bytes", func(t *testing.T) {
		c := e.client(t, func(cfg *client.Config) { cfg.HotBytes = -1 })
		old, obj := e.put(t, "mutable", 3*MiB, 1)
		buf := make([]byte, MiB)
		if _, err := c.ReadAt(ctx, obj, buf, 0); err != nil || !bytes.Equal(buf, old[:MiB]) {
			t.Fatalf("read first page: %v", err)
		}
		fresh, obj2 := e.put(t, "mutable", 3*MiB+5, 2)
		if obj2.Version == obj.Version {
			t.Fatal("overwrite kept the version")
		}
		u, err := c.Sources.Open(ctx, obj.Source)
		if err != nil {
			t.Fatal(err)
		}
		st, err := u.Stat(ctx, "mutable")
		if err != nil || st.Version != obj2.Version {
			t.Fatalf("stat after overwrite: %+v, %v", st, err)
		}
		mustReadAll(t, c, obj2, fresh)
		// A reader still holding the old version gets its cached pages or an
		// error, never bytes of the new version.
		if _, err := c.ReadAt(ctx, obj, buf, 0); err != nil || !bytes.Equal(buf, old[:MiB]) {
			t.Errorf("cached page of the old version: %v", err)
		}
		if _, err := c.ReadAt(ctx, obj, buf, 2*MiB); !errors.Is(err, ufs.ErrVersionMismatch) {
			t.Errorf("uncached page of the old version: err = %v, want ErrVersionMismatch", err)
		}
	})
}
