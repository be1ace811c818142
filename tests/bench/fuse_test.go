package bench

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hoard.dev/hoard/tests/testenv"
)

// dataset is what the FUSE benchmark reads, the same on every system.
type dataset struct {
	shards     []string // large files read sequentially
	shardSize  int64
	small      []string // image-sized files of an epoch
	smallSize  int64
	ranged     []string // files read at random 1 MiB ranges
	rangedSize int64
}

func newDataset() dataset {
	s := scale()
	d := dataset{
		shardSize:  max(int64(1<<30)/s, 16*MiB),
		smallSize:  100 << 10,
		rangedSize: max(int64(200*MiB)/s, 16*MiB),
	}
	for i := 0; i < 4; i++ {
		d.shards = append(d.shards, fmt.Sprintf("shards/shard-%d.tar", i))
		d.ranged = append(d.ranged, fmt.Sprintf("ranged/blob-%d.bin", i))
	}
	n := int(max(20000/s, 200))
	for i := 0; i < n; i++ {
		d.small = append(d.small, fmt.Sprintf("images/class-%02d/img-%05d.jpg", i%50, i))
	}
	return d
}

// fill writes the dataset into MinIO and into a local directory.
func (d dataset) fill(b *testing.B, m *testenv.MinIO, bucket, local string) {
	type obj struct {
		key  string
		size int64
		seed uint64
	}
	var all []obj
	for i, k := range d.shards {
		all = append(all, obj{k, d.shardSize, uint64(100 + i)})
	}
	for i, k := range d.ranged {
		all = append(all, obj{k, d.rangedSize, uint64(200 + i)})
	}
	for i, k := range d.small {
		all = append(all, obj{k, d.smallSize, uint64(1000 + i)})
	}
	_, _, err := parallel(len(all), 16, func(i int) (int64, error) {
		o := all[i]
		data := testenv.RandomBytes(o.size, o.seed)
		m.Put(b, bucket, o.key, data)
		p := filepath.Join(local, o.key)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, err
		}
		return o.size, os.WriteFile(p, data, 0o644)
	})
	if err != nil {
		b.Fatal(err)
	}
}

// fsys is one way of presenting the bucket as a directory.
type fsys struct {
	name string
	// mount mounts the bucket on dir with its cache in cacheDir and returns
	// the serving process (nil for local disk) once the mount answers.
	mount func(b *testing.B, dir, cacheDir string) *exec.Cmd
}

// fuseRow is one system's figures for one temperature.
type fuseRow struct {
	system, temp string
	seq1, seq4   float64 // MiB/s
	filesPerSec  float64
	rangeMiBs    float64
	p50, p99     time.Duration
	lsSeconds    float64
	peakRSS      int64 // bytes; 0 for local disk
	errs         []string
}

// BenchmarkFUSE compares the hoard mount with local disk, s3fs and rclone
// mount over the same MinIO data (issue 4), cold and warm.
func BenchmarkFUSE(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: mounts and drop_caches")
	}
	m := testenv.StartMinIO(b)
	const bucket = "fusebench"
	m.MakeBucket(b, bucket)
	local := b.TempDir()
	d := newDataset()
	start := time.Now()
	d.fill(b, m, bucket, local)
	b.Logf("dataset: %d shards x %d MiB, %d files x %d KiB, %d ranged files x %d MiB; uploaded in %s",
		len(d.shards), d.shardSize/MiB, len(d.small), d.smallSize>>10, len(d.ranged), d.rangedSize/MiB, time.Since(start))
	// Let the upload's writeback and MinIO's background work settle, so the
	// first system measured is not the one that pays for them.
	syncAll()
	time.Sleep(20 * time.Second)

	systems := []fsys{
		{name: "local disk", mount: nil},
		{name: "hoard", mount: hoardMount(m, bucket)},
		{name: "s3fs", mount: s3fsMount(m, bucket)},
		{name: "rclone", mount: rcloneMount(m, bucket)},
	}
	if only := os.Getenv("HOARD_BENCH_SYSTEMS"); only != "" {
		systems = slices.DeleteFunc(systems, func(s fsys) bool { return !strings.Contains(only, s.name) })
	}
	var rows []fuseRow
	for _, sys := range systems {
		if sys.mount == nil {
			dropCaches()
			r := runOps(b, d, local, nil)
			r.system, r.temp = sys.name, "page cache dropped"
			rows = append(rows, r)
			continue
		}
		if _, err := exec.LookPath(strings.Fields(sys.name)[0]); err != nil && sys.name != "hoard" {
			b.Logf("%s not installed: skipped (%v)", sys.name, err)
			continue
		}
		cacheDir := b.TempDir()
		for _, temp := range []string{"cold", "warm"} {
			dir := b.TempDir()
			dropCaches()
			cmd := sys.mount(b, dir, cacheDir)
			r := runOps(b, d, dir, cmd)
			r.system, r.temp = sys.name, temp
			rows = append(rows, r)
			unmount(b, dir, cmd)
		}
	}
	printFUSE(os.Stdout, d, rows)
}

// runOps runs the four workloads on a mounted tree and samples the serving
// process's peak RSS.
func runOps(b *testing.B, d dataset, dir string, cmd *exec.Cmd) fuseRow {
	var r fuseRow
	note := func(what string, err error) {
		if err != nil {
			r.errs = append(r.errs, fmt.Sprintf("%s: %v", what, err))
			b.Logf("%s: %v", what, err)
		}
	}
	// ls -lR first: metadata of a tree nobody has looked at yet.
	t0 := time.Now()
	ls := exec.Command("ls", "-lR", dir)
	ls.Stdout = io.Discard
	note("ls -lR", ls.Run())
	r.lsSeconds = time.Since(t0).Seconds()

	n, dur, err := parallel(1, 1, func(i int) (int64, error) { return readFile(filepath.Join(dir, d.shards[0])) })
	note("seq x1", err)
	r.seq1 = float64(n) / MiB / dur.Seconds()
	n, dur, err = parallel(4, 4, func(i int) (int64, error) { return readFile(filepath.Join(dir, d.shards[i])) })
	note("seq x4", err)
	r.seq4 = float64(n) / MiB / dur.Seconds()

	order := rand.New(rand.NewPCG(42, 42)).Perm(len(d.small))
	files, dur, err := parallel(len(order), 16, func(i int) (int64, error) {
		_, err := readFile(filepath.Join(dir, d.small[order[i]]))
		return 1, err
	})
	note("epoch", err)
	r.filesPerSec = float64(files) / dur.Seconds()

	rr := runRanges(b, d, dir)
	r.rangeMiBs, r.p50, r.p99 = rr.rangeMiBs, rr.p50, rr.p99
	if rr.errs != nil {
		r.errs = append(r.errs, rr.errs...)
	}
	if cmd != nil {
		r.peakRSS = peakRSS(cmd.Process.Pid)
	}
	return r
}

// runRanges reads 200 random 1 MiB ranges of the ranged files, 4 at a time.
func runRanges(b *testing.B, d dataset, dir string) fuseRow {
	var r fuseRow
	note := func(what string, err error) {
		if err != nil {
			r.errs = append(r.errs, fmt.Sprintf("%s: %v", what, err))
			b.Logf("%s: %v", what, err)
		}
	}
	var lat []time.Duration
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(7, 7))
	type rr struct {
		file string
		off  int64
	}
	var ranges []rr
	for i := 0; i < 200; i++ {
		ranges = append(ranges, rr{d.ranged[rng.IntN(len(d.ranged))], rng.Int64N(d.rangedSize - MiB)})
	}
	n, dur, err := parallel(len(ranges), 4, func(i int) (int64, error) {
		f, err := os.Open(filepath.Join(dir, ranges[i].file))
		if err != nil {
			return 0, err
		}
		defer f.Close()
		buf := make([]byte, MiB)
		t := time.Now()
		got, err := f.ReadAt(buf, ranges[i].off)
		mu.Lock()
		lat = append(lat, time.Since(t))
		mu.Unlock()
		return int64(got), err
	})
	note("ranges", err)
	r.rangeMiBs = float64(n) / MiB / dur.Seconds()
	slices.Sort(lat)
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

func readFile(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.CopyBuffer(io.Discard, f, make([]byte, MiB))
}

// peakRSS reads VmHWM of a process (and of its children: s3fs forks none,
// rclone and hoard neither).
func peakRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// waitMounted waits until dir is a mount point (its device differs from its
// parent's) and answers a listing.
func waitMounted(b *testing.B, dir string, cmd *exec.Cmd, logs *strings.Builder) {
	var parent syscall.Stat_t
	syscall.Stat(filepath.Dir(dir), &parent)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if cmd.ProcessState != nil {
			break
		}
		var st syscall.Stat_t
		if syscall.Stat(dir, &st) == nil && st.Dev != parent.Dev {
			if _, err := os.ReadDir(dir); err == nil {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("%s did not mount %s within 60s:\n%s", cmd.Path, dir, logs.String())
}

func startMount(b *testing.B, dir string, cmd *exec.Cmd) *exec.Cmd {
	logs := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go cmd.Wait()
	b.Cleanup(func() { unmount(b, dir, cmd) })
	waitMounted(b, dir, cmd, logs)
	return cmd
}

func unmount(b *testing.B, dir string, cmd *exec.Cmd) {
	syscall.Unmount(dir, syscall.MNT_DETACH)
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() {
			for peakRSS(cmd.Process.Pid) != 0 {
				time.Sleep(50 * time.Millisecond)
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	}
}

func hoardMount(m *testenv.MinIO, bucket string) func(b *testing.B, dir, cacheDir string) *exec.Cmd {
	return func(b *testing.B, dir, cacheDir string) *exec.Cmd {
		cmd := exec.Command(testenv.HoardBinary(b), "mount", "s3://"+bucket, dir,
			"--s3-endpoint", m.Endpoint(), "--s3-insecure", "--s3-path-style", "--s3-region", "us-east-1",
			"--cache-dir", cacheDir, "--cache-size", "16GiB", "--log-level", "warn")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+m.AccessKey(), "AWS_SECRET_ACCESS_KEY="+m.SecretKey())
		return startMount(b, dir, cmd)
	}
}

func s3fsMount(m *testenv.MinIO, bucket string) func(b *testing.B, dir, cacheDir string) *exec.Cmd {
	return func(b *testing.B, dir, cacheDir string) *exec.Cmd {
		pw := filepath.Join(b.TempDir(), "passwd")
		if err := os.WriteFile(pw, []byte(m.AccessKey()+":"+m.SecretKey()+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		// Options as its users tune it for reading: a disk cache, path-style
		// MinIO, parallel ranged GETs.
		cmd := exec.Command("s3fs", bucket, dir, "-f", "-o",
			"url=http://"+m.Endpoint()+",use_path_request_style,passwd_file="+pw+",ro,use_cache="+cacheDir+
				",parallel_count=16,multireq_max=16,stat_cache_expire=3600")
		return startMount(b, dir, cmd)
	}
}

func rcloneMount(m *testenv.MinIO, bucket string) func(b *testing.B, dir, cacheDir string) *exec.Cmd {
	return func(b *testing.B, dir, cacheDir string) *exec.Cmd {
		cmd := exec.Command("rclone", "mount", "minio:"+bucket, dir, "--read-only",
			"--vfs-cache-mode", "full", "--cache-dir", cacheDir, "--dir-cache-time", "1h",
			"--vfs-read-chunk-size", "8M", "--buffer-size", "16M")
		var env []string
		for _, kv := range os.Environ() {
			// rclone 1.60 refuses to build its S3 client when given a CA bundle.
			if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
				env = append(env, kv)
			}
		}
		cmd.Env = append(env,
			"RCLONE_CONFIG_MINIO_TYPE=s3", "RCLONE_CONFIG_MINIO_PROVIDER=Minio",
			"RCLONE_CONFIG_MINIO_ENDPOINT=http://"+m.Endpoint(), "RCLONE_CONFIG_MINIO_REGION=us-east-1",
			"RCLONE_CONFIG_MINIO_ACCESS_KEY_ID="+m.AccessKey(), "RCLONE_CONFIG_MINIO_SECRET_ACCESS_KEY="+m.SecretKey())
		return startMount(b, dir, cmd)
	}
}

func printFUSE(w io.Writer, d dataset, rows []fuseRow) {
	fmt.Fprintf(w, "\n## FUSE view: %d x %d MiB shards, %d x %d KiB files (16 readers), 200 random 1 MiB ranges over %d x %d MiB files (4 readers)\n\n",
		len(d.shards), d.shardSize/MiB, len(d.small), d.smallSize>>10, len(d.ranged), d.rangedSize/MiB)
	fmt.Fprintln(w, "| system | cache | seq x1 MiB/s | seq x4 MiB/s | epoch files/s | ranges MiB/s | p50 | p99 | ls -lR s | peak RSS MiB | errors |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		rss := "-"
		if r.peakRSS > 0 {
			rss = strconv.FormatInt(r.peakRSS/MiB, 10)
		}
		e := "-"
		if len(r.errs) > 0 {
			e = strings.Join(r.errs, "; ")
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.0f | %.0f | %s | %s | %.2f | %s | %s |\n", r.system, r.temp,
			r.seq1, r.seq4, r.filesPerSec, r.rangeMiBs, r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond),
			r.lsSeconds, rss, e)
	}
	// Ratios that the goals are stated in.
	find := func(sys, temp string) *fuseRow {
		for i := range rows {
			if rows[i].system == sys && (temp == "" || rows[i].temp == temp) {
				return &rows[i]
			}
		}
		return nil
	}
	localRow, hw, hc := find("local disk", ""), find("hoard", "warm"), find("hoard", "cold")
	if localRow != nil && hw != nil {
		fmt.Fprintf(w, "\nhoard warm / local disk: epoch %.2fx, seq x1 %.2fx, seq x4 %.2fx, ranges %.2fx\n",
			hw.filesPerSec/localRow.filesPerSec, hw.seq1/localRow.seq1, hw.seq4/localRow.seq4, hw.rangeMiBs/localRow.rangeMiBs)
	}
	bestPeer := func(temp string, f func(*fuseRow) float64, lower bool) float64 {
		best := 0.0
		for _, p := range []string{"s3fs", "rclone"} {
			if r := find(p, temp); r != nil && len(r.errs) == 0 {
				v := f(r)
				if best == 0 || (!lower && v > best) || (lower && v < best) {
					best = v
				}
			}
		}
		return best
	}
	if hw != nil {
		if bp := bestPeer("warm", func(r *fuseRow) float64 { return r.filesPerSec }, false); bp > 0 {
			fmt.Fprintf(w, "hoard warm epoch / best peer warm: %.2fx\n", hw.filesPerSec/bp)
		}
	}
	if hc != nil {
		if bp := bestPeer("cold", func(r *fuseRow) float64 { return r.lsSeconds }, true); bp > 0 {
			fmt.Fprintf(w, "hoard cold ls -lR speed / best peer: %.2fx\n", bp/hc.lsSeconds)
		}
		if bp := bestPeer("cold", func(r *fuseRow) float64 { return r.seq4 }, false); bp > 0 {
			fmt.Fprintf(w, "hoard cold seq x4 / best peer cold: %.2fx\n", hc.seq4/bp)
		}
		if bp := bestPeer("cold", func(r *fuseRow) float64 { return r.filesPerSec }, false); bp > 0 {
			fmt.Fprintf(w, "hoard cold epoch / best peer cold: %.2fx\n", hc.filesPerSec/bp)
		}
	}
}
