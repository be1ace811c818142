// Package bench measures hoard against its baselines in one run on one
// machine: local disk, straight S3 (MinIO on loopback), and, for the FUSE
// view, the peers people use. It reports ratios; absolute figures on shared
// machines are noise. Run it with `make bench`.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/tests/testenv"
)

const MiB = 1 << 20

// scale divides the data set: HOARD_BENCH_SCALE=8 runs on 1/8 of it (CI).
func scale() int64 {
	if s, err := strconv.Atoi(os.Getenv("HOARD_BENCH_SCALE")); err == nil && s > 0 {
		return int64(s)
	}
	return 1
}

// dropCaches empties the kernel page cache so "warm" means hoard's cache, not
// the kernel's. It reports whether it could.
func dropCaches() bool {
	exec := func() error {
		f, err := os.OpenFile("/proc/sys/vm/drop_caches", os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		syncAll()
		_, err = f.WriteString("3\n")
		return err
	}
	return exec() == nil
}

// result is one row of a table.
type result struct {
	name  string
	bytes int64
	d     time.Duration
	note  string
}

func (r result) mibps() float64 { return float64(r.bytes) / MiB / r.d.Seconds() }

// table prints rows with their ratio to the row named base.
func table(w io.Writer, title string, rows []result, bases map[string]string) {
	byName := map[string]result{}
	for _, r := range rows {
		byName[r.name] = r
	}
	fmt.Fprintf(w, "\n### %s\n\n| case | MiB/s | vs | ratio | note |\n|---|---:|---|---:|---|\n", title)
	for _, r := range rows {
		vs, ratio := "", ""
		if b, ok := bases[r.name]; ok {
			if br, ok := byName[b]; ok {
				vs, ratio = b, fmt.Sprintf("%.2f", r.mibps()/br.mibps())
			}
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s |\n", r.name, r.mibps(), vs, ratio, r.note)
	}
}

// parallel runs fn on each of n items with p goroutines and times it.
func parallel(n, p int, fn func(i int) (int64, error)) (int64, time.Duration, error) {
	var (
		mu    sync.Mutex
		total int64
		first error
		wg    sync.WaitGroup
	)
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	start := time.Now()
	for g := 0; g < p; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b, err := fn(i)
				mu.Lock()
				total += b
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return total, time.Since(start), first
}

// BenchmarkCoreRead is the cache core's benchmark (issue 3): a 2 GiB file set
// read with 4 readers through the client (3 worker processes, etcd) and
// through an embedded cache, cold and warm, next to local disk and direct S3.
func BenchmarkCoreRead(b *testing.B) {
	const readers = 4
	files := int(16 / min(scale(), 16))
	size := int64(128*MiB) / max(scale()/16, 1)
	ctx := context.Background()

	m := testenv.StartMinIO(b)
	m.MakeBucket(b, "bench")
	localDir := b.TempDir()
	keys := make([]string, files)
	for i := range keys {
		keys[i] = fmt.Sprintf("set/file-%02d", i)
		data := testenv.RandomBytes(size, uint64(i))
		m.Put(b, "bench", keys[i], data)
		if err := os.WriteFile(filepath.Join(localDir, fmt.Sprintf("file-%02d", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	s3, err := ufs.NewS3(ctx, "bench", m.S3Config())
	if err != nil {
		b.Fatal(err)
	}
	objs := make([]client.Object, files)
	for i, k := range keys {
		st, err := s3.Stat(ctx, k)
		if err != nil {
			b.Fatal(err)
		}
		objs[i] = client.Object{Source: s3.Source(), Key: k, Version: st.Version, Size: st.Size}
	}
	dropped := dropCaches()
	note := "page cache dropped"
	if !dropped {
		note = "page cache NOT dropped (not root)"
	}
	rounds := 3
	if r, err := strconv.Atoi(os.Getenv("HOARD_BENCH_ROUNDS")); err == nil && r > 0 {
		rounds = r
	}
	samples := map[string][]result{}
	var order []string
	run := func(name, note string, fn func(i int) (int64, error)) {
		if dropped && !strings.Contains(name, "page-cached") {
			dropCaches()
		}
		n, d, err := parallel(files, readers, fn)
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		if _, ok := samples[name]; !ok {
			order = append(order, name)
		}
		samples[name] = append(samples[name], result{name: name, bytes: n, d: d, note: note})
		b.Logf("%s: %.0f MiB/s", name, float64(n)/MiB/d.Seconds())
	}
	buf := func() []byte { return make([]byte, MiB) }
	et := testenv.StartEtcd(b)
	newClient := func(cfg server.ClientConfig) *server.Client {
		cfg.S3 = m.S3Config()
		c, err := server.NewClient(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Open(ctx, ufs.Location{Scheme: "s3", Bucket: "bench"}, m.S3Config()); err != nil {
			b.Fatal(err)
		}
		return c
	}
	readThrough := func(c *server.Client) func(i int) (int64, error) {
		return func(i int) (int64, error) { return readObject(ctx, c, objs[i]) }
	}

	for round := 0; round < rounds; round++ {
		run("local disk", note, func(i int) (int64, error) {
			f, err := os.Open(filepath.Join(localDir, fmt.Sprintf("file-%02d", i)))
			if err != nil {
				return 0, err
			}
			defer f.Close()
			return io.CopyBuffer(io.Discard, f, buf())
		})
		run("direct S3, 1 GET per file", "4 streams", func(i int) (int64, error) {
			r, err := s3.ReadRange(ctx, objs[i].Key, objs[i].Version, 0, objs[i].Size)
			if err != nil {
				return 0, err
			}
			defer r.Close()
			return io.CopyBuffer(io.Discard, r, buf())
		})
		run("direct S3, 8 MiB ranges x4 per file", "16 GETs in flight", func(i int) (int64, error) {
			return rangedGET(ctx, s3, objs[i], 8*MiB, 4)
		})

		// The cluster: 3 worker processes with empty caches, registered in etcd.
		cluster := fmt.Sprintf("bench-%d", round)
		var workers []*testenv.WorkerProc
		for i := 0; i < 3; i++ {
			workers = append(workers, testenv.StartWorkerProc(b, testenv.WorkerOptions{
				ID: fmt.Sprintf("w%d", i), Etcd: et.Endpoints(), Cluster: cluster, Capacity: "4GiB", S3: m,
			}))
		}
		clusterCfg := server.ClientConfig{Etcd: membership.EtcdConfig{Endpoints: et.Endpoints(), Cluster: cluster},
			TLS: testenv.ClientTLS(b)}
		c := newClient(clusterCfg)
		waitAlive(b, c, 3)
		run("hoard cluster, cold", "3 workers, empty caches", readThrough(c))
		c.Close()
		c = newClient(clusterCfg)
		waitAlive(b, c, 3)
		run("hoard cluster, warm", note+", new client", readThrough(c))
		run("hoard cluster, warm, page-cached", "kernel page cache and hot tier kept", readThrough(c))
		c.Close()
		for _, w := range workers {
			w.Kill(b)
		}

		// The embedded default (what `hoard mount` runs): worker in the process.
		embCfg := server.ClientConfig{CacheDir: b.TempDir(), Capacity: 4 << 30}
		c = newClient(embCfg)
		run("hoard embedded, cold", "in-process worker, empty cache", readThrough(c))
		c.Close()
		c = newClient(embCfg)
		run("hoard embedded, warm", note+", reopened cache", readThrough(c))
		c.Close()
	}
	var rows []result
	for _, name := range order {
		m := median(samples[name])
		var all []string
		for _, r := range samples[name] {
			all = append(all, fmt.Sprintf("%.0f", r.mibps()))
		}
		m.note += "; rounds: " + strings.Join(all, ", ")
		rows = append(rows, m)
	}

	w := io.Writer(os.Stdout)
	fmt.Fprintf(w, "\n## Cache core: %d files x %d MiB, %d readers, 1 MiB reads, median of %d rounds\n", files, size/MiB, readers, rounds)
	table(w, "Throughput", rows, map[string]string{
		"direct S3, 8 MiB ranges x4 per file": "direct S3, 1 GET per file",
		"hoard cluster, cold":                 "direct S3, 8 MiB ranges x4 per file",
		"hoard cluster, warm":                 "local disk",
		"hoard cluster, warm, page-cached":    "local disk",
		"hoard embedded, cold":                "direct S3, 8 MiB ranges x4 per file",
		"hoard embedded, warm":                "local disk",
	})
}

// median returns the sample with the median throughput.
func median(rs []result) result {
	sorted := append([]result(nil), rs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].mibps() < sorted[j].mibps() })
	return sorted[len(sorted)/2]
}

func waitAlive(b *testing.B, c *server.Client, n int) {
	deadline := time.Now().Add(20 * time.Second)
	for len(c.View().Alive) < n {
		if time.Now().After(deadline) {
			b.Fatalf("client sees %d of %d workers", len(c.View().Alive), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readObject reads obj sequentially in 1 MiB reads, as an application would.
func readObject(ctx context.Context, c *server.Client, obj client.Object) (int64, error) {
	r := c.NewReader(obj)
	buf := make([]byte, MiB)
	var off int64
	for off < obj.Size {
		n, err := r.ReadAt(ctx, buf, off)
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return off, err
		}
	}
	return off, nil
}

// rangedGET reads obj in part-sized ranged GETs, inflight at a time.
func rangedGET(ctx context.Context, s3 ufs.RangeReader, obj client.Object, part int64, inflight int) (int64, error) {
	var total int64
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	for off := int64(0); off < obj.Size; off += part {
		sem <- struct{}{}
		wg.Add(1)
		go func(off int64) {
			defer func() { <-sem; wg.Done() }()
			r, err := s3.ReadRange(ctx, obj.Key, obj.Version, off, min(part, obj.Size-off))
			var n int64
			if err == nil {
				n, err = io.Copy(io.Discard, r)
				r.Close()
			}
			mu.Lock()
			total += n
			if err != nil && first == nil {
				first = err
			}
			mu.Unlock()
		}(off)
	}
	wg.Wait()
	return total, first
}
