package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/worker"
	"hoard.dev/hoard/tests/testenv"
)

// BenchmarkServingReplicas is issue 13's serving case: three replicas (three
// hoard mounts on one cache cluster of three workers) load the same model
// (4 GiB in 8 shards; HOARD_BENCH_SCALE divides it) at the same moment.
// Goals: each chunk is fetched from the bucket once (the workers' fetched
// bytes against the model's size), and on a warm cache every replica of
// three loading at once is done within 1.2x of one replica loading alone.
// Each replica reads its shards 4 at a time in 1 MiB reads, page cache
// dropped before each load, a new mount each time (its hot tier empty).
func BenchmarkServingReplicas(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: mounts and drop_caches")
	}
	const (
		replicas = 3
		shards   = 8
		readers  = 4
		bucket   = "models"
	)
	shardSize := max(int64(512*MiB)/scale(), 16*MiB)
	m := testenv.StartMinIO(b)
	m.MakeBucket(b, bucket)
	var keys []string
	for i := range shards {
		keys = append(keys, fmt.Sprintf("llm/model-%05d-of-%05d.safetensors", i+1, shards))
	}
	if _, _, err := parallel(shards, 4, func(i int) (int64, error) {
		m.Put(b, bucket, keys[i], testenv.RandomBytes(shardSize, uint64(500+i)))
		return shardSize, nil
	}); err != nil {
		b.Fatal(err)
	}
	model := shardSize * shards
	syncAll()
	time.Sleep(10 * time.Second)

	et := testenv.StartEtcd(b)
	var workers []*testenv.WorkerProc
	for i := range 3 {
		workers = append(workers, testenv.StartWorkerProc(b, testenv.WorkerOptions{
			ID: fmt.Sprintf("w%d", i), Etcd: et.Endpoints(), Cluster: "replicas", Capacity: "16GiB", S3: m,
		}))
	}
	pids := []int{m.Pid()}
	for _, w := range workers {
		pids = append(pids, w.Pid())
	}
	fetched := func() int64 {
		var n int64
		for _, w := range workers {
			n += workerStatus(b, w).FetchedBytes
		}
		return n
	}

	// load mounts n replicas, drops the page cache, and has them all read the
	// model at once; it returns each one's time and the CPU time of every
	// process involved.
	load := func(n int) ([]time.Duration, float64) {
		var dirs []string
		var mts []mounted
		var mpids []int
		for range n {
			dir := b.TempDir()
			mt := clusterMount(b, m, bucket, dir, et.Endpoints(), "replicas")
			dirs = append(dirs, dir)
			mts = append(mts, mt)
			mpids = append(mpids, mt.cmd.Process.Pid)
		}
		dropCaches()
		all := append(append([]int(nil), pids...), mpids...)
		c0 := cpuSeconds(all...)
		times := make([]time.Duration, n)
		var wg sync.WaitGroup
		for r := range n {
			wg.Go(func() {
				_, d, err := parallel(shards, readers, func(i int) (int64, error) { return readFile(filepath.Join(dirs[r], keys[i])) })
				if err != nil {
					b.Errorf("replica %d: %v", r, err)
				}
				times[r] = d
			})
		}
		wg.Wait()
		cpu := cpuSeconds(all...) - c0
		for i, dir := range dirs {
			unmount(b, dir, mts[i].cmd)
		}
		return times, cpu
	}

	// Direct S3 for reference: one replica reading the model with GETs.
	dropCaches()
	s3 := s3Target(m, bucket)
	c0 := cpuSeconds(pids[0])
	_, direct, err := parallel(shards, readers, func(i int) (int64, error) { return s3.readWhole(keys[i]) })
	if err != nil {
		b.Fatal(err)
	}
	directCPU := cpuSeconds(pids[0]) - c0

	f0 := fetched()
	cold, coldCPU := load(replicas)
	coldFetched := fetched() - f0
	alone, aloneCPU := load(1)
	warm, warmCPU := load(replicas)
	afterFetched := fetched() - f0

	gib := float64(model) / (1 << 30)
	w := io.Writer(os.Stdout)
	fmt.Fprintf(w, "\n## Serving replicas: %d replicas load a %d MiB model (%d shards, %d readers each) through one cluster of %d workers\n\n",
		replicas, model/MiB, shards, readers, len(workers))
	fmt.Fprintln(w, "| load | replica times | slowest | MiB/s per replica (slowest) | CPU-s per GiB loaded |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|")
	row := func(name string, times []time.Duration, cpu float64) time.Duration {
		var ts []string
		slowest := time.Duration(0)
		for _, t := range times {
			ts = append(ts, t.Round(time.Millisecond).String())
			slowest = max(slowest, t)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.2f |\n", name, strings.Join(ts, ", "), slowest.Round(time.Millisecond),
			float64(model)/MiB/slowest.Seconds(), cpu/(gib*float64(len(times))))
		return slowest
	}
	row("direct S3, 1 replica", []time.Duration{direct}, directCPU)
	row(fmt.Sprintf("cold, %d at once", replicas), cold, coldCPU)
	t1 := row("warm, 1 alone", alone, aloneCPU)
	tn := row(fmt.Sprintf("warm, %d at once", replicas), warm, warmCPU)
	fmt.Fprintf(w, "\nbucket bytes fetched by the workers: %d MiB during the cold load (%.2fx the model), %d MiB in all (%.2fx)\n",
		coldFetched/MiB, float64(coldFetched)/float64(model), afterFetched/MiB, float64(afterFetched)/float64(model))
	fmt.Fprintf(w, "warm: slowest of %d at once / 1 alone = %.2fx (goal <= 1.2x)\n", replicas, tn.Seconds()/t1.Seconds())
}

// clusterMount mounts bucket through the cache cluster.
func clusterMount(b *testing.B, m *testenv.MinIO, bucket, dir string, etcd []string, cluster string) mounted {
	cmd := exec.Command(testenv.HoardBinary(b), "mount", "s3://"+bucket, dir, "--etcd", strings.Join(etcd, ","), "--cluster", cluster,
		"--s3-endpoint", m.Endpoint(), "--s3-insecure", "--s3-path-style", "--s3-region", "us-east-1",
		"--cache-dir", b.TempDir(), "--log-level", "warn")
	cmd.Args = append(cmd.Args, testenv.ClientTLSArgs(b)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+m.AccessKey(), "AWS_SECRET_ACCESS_KEY="+m.SecretKey())
	mt := startMount(b, dir, cmd)
	// The mount's first membership view comes from etcd before it serves;
	// give its watch a moment to see every lease.
	time.Sleep(500 * time.Millisecond)
	return mt
}

func workerStatus(b *testing.B, w *testenv.WorkerProc) worker.Status {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.URL(worker.StatusPath), nil)
	resp, err := w.HTTP().Do(req)
	if err != nil {
		b.Fatalf("status of %s: %v", w.ID, err)
	}
	defer resp.Body.Close()
	var st worker.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		b.Fatalf("status of %s: %v", w.ID, err)
	}
	return st
}
