package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/minio/minio-go/v7"

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

// target is one way of reaching the data: a mounted directory, or the
// bucket itself through a plain GET client.
type target struct {
	list      func() error                                       // ls -lR, or a recursive LIST
	readWhole func(key string) (int64, error)                    // one file, start to end
	readAt    func(key string, p []byte, off int64) (int, error) // one range
	pids      []int                                              // processes whose CPU counts besides this one and MinIO
	prof      profiler                                           // profiles of the serving process
	self      bool                                               // profile this process (the GET client)
}

// dirTarget reads files under dir.
func dirTarget(dir string) target {
	return target{
		list: func() error {
			ls := exec.Command("ls", "-lR", dir)
			ls.Stdout = io.Discard
			return ls.Run()
		},
		readWhole: func(key string) (int64, error) { return readFile(filepath.Join(dir, key)) },
		readAt: func(key string, p []byte, off int64) (int, error) {
			f, err := os.Open(filepath.Join(dir, key))
			if err != nil {
				return 0, err
			}
			defer f.Close()
			return f.ReadAt(p, off)
		},
	}
}

// s3Target reads the bucket with plain GETs (minio-go, one GET per file or
// range): what a job reading the bucket itself does.
func s3Target(m *testenv.MinIO, bucket string) target {
	c := m.Client()
	ctx := context.Background()
	return target{
		list: func() error {
			for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
				if o.Err != nil {
					return o.Err
				}
			}
			return nil
		},
		readWhole: func(key string) (int64, error) {
			o, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
			if err != nil {
				return 0, err
			}
			defer o.Close()
			buf := getBuf()
			defer putBuf(buf)
			return io.CopyBuffer(io.Discard, o, buf)
		},
		readAt: func(key string, p []byte, off int64) (int, error) {
			opt := minio.GetObjectOptions{}
			if err := opt.SetRange(off, off+int64(len(p))-1); err != nil {
				return 0, err
			}
			o, err := c.GetObject(ctx, bucket, key, opt)
			if err != nil {
				return 0, err
			}
			defer o.Close()
			return io.ReadFull(o, p)
		},
		self: true,
	}
}

// mounted is a running FUSE server.
type mounted struct {
	cmd   *exec.Cmd
	debug string // hoard's --debug-addr
}

// fsys is one way of presenting the bucket as a directory.
type fsys struct {
	name string
	// mount mounts the bucket on dir with its cache in cacheDir once the
	// mount answers. nil: local disk or direct S3 (no mount).
	mount func(b *testing.B, dir, cacheDir string) mounted
}

// workloads, in the order they run.
var workloads = []string{"ls -lR", "seq x1", "seq x4", "epoch", "epoch page-cached", "ranges"}

// fuseRow is one system's figures for one temperature in one round.
type fuseRow struct {
	system, temp string
	round        int
	seq1, seq4   float64 // MiB/s
	filesPerSec  float64
	cachedFiles  float64 // files/s of an epoch right after the one above, page cache kept
	rangeMiBs    float64
	p50, p99     time.Duration
	lsSeconds    float64
	cpuPerGiB    map[string]float64 // per workload: CPU-seconds per GiB read (ls: CPU-seconds)
	minioPerGiB  map[string]float64 // the part of cpuPerGiB that MinIO used
	serverPerGiB map[string]float64 // the part the FUSE server used (0 without one)
	peakRSS      int64              // bytes; 0 without a server
	errs         []string
}

// BenchmarkFUSE compares the hoard mount with local disk, direct S3 GETs,
// s3fs and rclone mount over the same MinIO data (issues 4 and 13), cold
// and warm, with every round shown. HOARD_BENCH_BEFORE=path adds a second
// hoard binary (e.g. main before a change) as "hoard before";
// HOARD_BENCH_PROFILE=dir saves CPU, blocking and mutex profiles of every
// hoard workload there; HOARD_BENCH_CACHE_ON=dir puts the mounts' cache
// directories under dir (another disk, or /dev/shm) instead of the one
// MinIO reads from.
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

	profDir := os.Getenv("HOARD_BENCH_PROFILE")
	if profDir != "" {
		if err := os.MkdirAll(profDir, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	systems := []fsys{
		{name: "local disk"},
		{name: "go-fuse loopback"},
		{name: "go-fuse passthrough"},
		{name: "direct S3"},
	}
	if before := os.Getenv("HOARD_BENCH_BEFORE"); before != "" {
		systems = append(systems, fsys{name: "hoard before", mount: hoardMount(m, bucket, before)})
	}
	systems = append(systems,
		fsys{name: "hoard", mount: hoardMount(m, bucket, testenv.HoardBinary(b))},
		fsys{name: "s3fs", mount: s3fsMount(m, bucket)},
		fsys{name: "rclone", mount: rcloneMount(m, bucket)},
	)
	if only := os.Getenv("HOARD_BENCH_SYSTEMS"); only != "" {
		systems = slices.DeleteFunc(systems, func(s fsys) bool { return !slices.Contains(strings.Split(only, ","), s.name) })
	}
	var rows []fuseRow
	fresh := []float64{freshCost(b)}
	for round := 1; round <= rounds(1); round++ {
		for _, sys := range systems {
			rows = append(rows, runSystem(b, m, bucket, d, local, sys, round, profDir)...)
		}
	}
	fresh = append(fresh, freshCost(b))
	printFUSE(os.Stdout, d, rows)
	fmt.Printf("\nFresh memory after a page cache drop: %.2f s to fault in 1 GiB before the systems ran, %.2f s after (see freshMemoryCost).\n", fresh[0], fresh[1])
}

// freshCost is freshMemoryCost, logged; 0 if it could not be measured.
func freshCost(b *testing.B) float64 {
	s, err := freshMemoryCost()
	if err != nil {
		b.Logf("fresh memory cost not measured: %v", err)
		return 0
	}
	b.Logf("fresh memory after a page cache drop: %.2f s per GiB", s)
	return s
}

// rounds is HOARD_BENCH_ROUNDS, else def.
func rounds(def int) int {
	if r, err := strconv.Atoi(os.Getenv("HOARD_BENCH_ROUNDS")); err == nil && r > 0 {
		return r
	}
	return def
}

// runSystem measures one system: local disk and direct S3 once (page
// cache dropped), a mount cold (fresh cache) then warm (remounted on that
// cache), the page cache dropped before each.
func runSystem(b *testing.B, m *testenv.MinIO, bucket string, d dataset, local string, sys fsys, round int, profDir string) []fuseRow {
	switch sys.name {
	case "local disk":
		dropCaches()
		r := runOps(b, d, dirTarget(local), m.Pid(), "")
		r.system, r.temp, r.round = sys.name, "page cache dropped", round
		return []fuseRow{r}
	case "go-fuse loopback", "go-fuse passthrough":
		dir, stop := loopbackMount(b, local, sys.name == "go-fuse passthrough")
		defer stop()
		dropCaches()
		r := runOps(b, d, dirTarget(dir), m.Pid(), "")
		r.system, r.temp, r.round = sys.name, "page cache dropped", round
		return []fuseRow{r}
	case "direct S3":
		dropCaches()
		t := s3Target(m, bucket)
		t.prof.dir = profDir
		r := runOps(b, d, t, m.Pid(), profileName(sys.name, strconv.Itoa(round)))
		r.system, r.temp, r.round = sys.name, "page cache dropped", round
		return []fuseRow{r}
	}
	if _, err := exec.LookPath(sys.name); err != nil && !strings.HasPrefix(sys.name, "hoard") {
		b.Logf("%s not installed: skipped (%v)", sys.name, err)
		return nil
	}
	var rows []fuseRow
	cacheDir := b.TempDir()
	if on := os.Getenv("HOARD_BENCH_CACHE_ON"); on != "" {
		// Where the bucket's disk is not the cache's (e.g. /dev/shm): what
		// a cold read costs when cache writes do not share the disk that
		// MinIO reads. Warm figures from there are not disk figures.
		d, err := os.MkdirTemp(on, "hoard-bench-cache-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		cacheDir = d
	}
	for _, temp := range []string{"cold", "warm"} {
		dir := b.TempDir()
		dropCaches()
		mt := sys.mount(b, dir, cacheDir)
		t := dirTarget(dir)
		t.pids = []int{mt.cmd.Process.Pid}
		if sys.name == "hoard" { // (an older binary may not start and stop CPU profiles)
			t.prof = profiler{dir: profDir, addr: mt.debug}
		}
		r := runOps(b, d, t, m.Pid(), profileName(sys.name, temp, strconv.Itoa(round)))
		r.system, r.temp, r.round = sys.name, temp, round
		r.peakRSS = peakRSS(mt.cmd.Process.Pid)
		rows = append(rows, r)
		unmount(b, dir, mt.cmd)
	}
	return rows
}

// loopbackMount mounts local through go-fuse's loopback file system, in this
// process, with hoard's mount options: the ceiling of a go-fuse server that
// adds nothing, and with passthrough (kernel 6.9+, root) what a server
// whose files are whole local files can get.
func loopbackMount(b *testing.B, local string, passthrough bool) (string, func()) {
	root, err := fs.NewLoopbackRoot(local)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	hour := time.Hour
	opts := &fs.Options{EntryTimeout: &hour, AttrTimeout: &hour, MountOptions: fuse.MountOptions{
		MaxWrite: MiB, MaxReadAhead: MiB, MaxBackground: 64, Options: []string{"ro", "default_permissions"},
		DirectMount: true, FsName: "loopback", Name: "loopback",
	}}
	if !passthrough {
		opts.MountOptions.DisabledCapabilities = fuse.CAP_PASSTHROUGH
	}
	srv, err := fs.Mount(dir, root, opts)
	if err != nil {
		b.Fatal(err)
	}
	return dir, func() {
		srv.Unmount()
		srv.Wait()
	}
}

// runOps runs the workloads on a target, each timed, with the CPU time of
// this process, the target's processes and MinIO counted per GiB read.
func runOps(b *testing.B, d dataset, t target, minioPid int, profName string) fuseRow {
	r := fuseRow{cpuPerGiB: map[string]float64{}, minioPerGiB: map[string]float64{}, serverPerGiB: map[string]float64{}}
	note := func(what string, err error) {
		if err != nil {
			r.errs = append(r.errs, fmt.Sprintf("%s: %v", what, err))
			b.Logf("%s: %v", what, err)
		}
	}
	pids := append([]int{minioPid}, t.pids...)
	// measure runs one workload and returns the bytes read and the time.
	measure := func(name string, fn func() (int64, time.Duration, error)) (int64, time.Duration) {
		pn := profileName(profName, name)
		t.prof.start(pn)
		stopSelf := profileSelf(t, pn)
		c0, m0, s0 := cpuSeconds(pids...), procCPU(minioPid), serverCPU(t.pids)
		n, dur, err := fn()
		cpu := cpuSeconds(pids...) - c0
		mcpu, scpu := procCPU(minioPid)-m0, serverCPU(t.pids)-s0
		stopSelf()
		t.prof.stop(pn)
		note(name, err)
		if name == "ls -lR" {
			r.cpuPerGiB[name], r.minioPerGiB[name], r.serverPerGiB[name] = cpu, mcpu, scpu
		} else if n > 0 {
			gib := float64(n) / (1 << 30)
			r.cpuPerGiB[name], r.minioPerGiB[name], r.serverPerGiB[name] = cpu/gib, mcpu/gib, scpu/gib
		}
		return n, dur
	}
	timed := func(fn func() error) (int64, time.Duration, error) {
		t0 := time.Now()
		err := fn()
		return 0, time.Since(t0), err
	}
	// ls -lR first: metadata of a tree nobody has looked at yet.
	_, dur := measure("ls -lR", func() (int64, time.Duration, error) { return timed(t.list) })
	r.lsSeconds = dur.Seconds()

	n, dur := measure("seq x1", func() (int64, time.Duration, error) {
		return parallel(1, 1, func(i int) (int64, error) { return t.readWhole(d.shards[0]) })
	})
	r.seq1 = float64(n) / MiB / dur.Seconds()
	n, dur = measure("seq x4", func() (int64, time.Duration, error) {
		return parallel(4, 4, func(i int) (int64, error) { return t.readWhole(d.shards[i]) })
	})
	r.seq4 = float64(n) / MiB / dur.Seconds()

	order := rand.New(rand.NewPCG(42, 42)).Perm(len(d.small))
	epoch := func() (int64, time.Duration, error) {
		return parallel(len(order), 16, func(i int) (int64, error) { return t.readWhole(d.small[order[i]]) })
	}
	n, dur = measure("epoch", epoch)
	r.filesPerSec = float64(n) / float64(d.smallSize) / dur.Seconds()
	n, dur = measure("epoch page-cached", epoch)
	r.cachedFiles = float64(n) / float64(d.smallSize) / dur.Seconds()

	var rr rangeResult
	n, dur = measure("ranges", func() (int64, time.Duration, error) {
		rr = runRanges(d, t)
		return rr.bytes, rr.dur, rr.err
	})
	r.rangeMiBs = float64(n) / MiB / dur.Seconds()
	r.p50, r.p99 = rr.p50, rr.p99
	return r
}

// profileSelf profiles this process during a workload of a target that
// is served by it (the direct GET client).
func profileSelf(t target, name string) func() {
	if !t.self || t.prof.dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(t.prof.dir, name+".cpu.pb.gz"))
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// rangeReaders is how many random 1 MiB reads run at once.
const rangeReaders = 8

// rangeResult is what runRanges measured.
type rangeResult struct {
	bytes    int64
	dur      time.Duration
	p50, p99 time.Duration
	err      error
}

// runRanges reads 400 random 1 MiB ranges of the ranged files,
// rangeReaders at a time.
func runRanges(d dataset, t target) rangeResult {
	var lat []time.Duration
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(7, 7))
	type rr struct {
		file string
		off  int64
	}
	var ranges []rr
	for i := 0; i < 400; i++ {
		ranges = append(ranges, rr{d.ranged[rng.IntN(len(d.ranged))], rng.Int64N(d.rangedSize - MiB)})
	}
	var res rangeResult
	res.bytes, res.dur, res.err = parallel(len(ranges), rangeReaders, func(i int) (int64, error) {
		buf := getBuf()
		defer putBuf(buf)
		start := time.Now()
		got, err := t.readAt(ranges[i].file, buf, ranges[i].off)
		mu.Lock()
		lat = append(lat, time.Since(start))
		mu.Unlock()
		return int64(got), err
	})
	slices.Sort(lat)
	if len(lat) > 0 {
		res.p50, res.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return res
}

// bufs holds the readers' 1 MiB buffers: allocating one per file cost the
// benchmark itself more CPU than a page-cached 100 KiB read.
var bufs = sync.Pool{New: func() any { b := make([]byte, MiB); return &b }}

func getBuf() []byte  { return *(bufs.Get().(*[]byte)) }
func putBuf(b []byte) { bufs.Put(&b) }

func readFile(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := getBuf()
	defer putBuf(buf)
	return io.CopyBuffer(io.Discard, f, buf)
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

func startMount(b *testing.B, dir string, cmd *exec.Cmd) mounted {
	logs := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go cmd.Wait()
	b.Cleanup(func() { unmount(b, dir, cmd) })
	waitMounted(b, dir, cmd, logs)
	return mounted{cmd: cmd}
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

// hoardMount mounts with the hoard binary bin, its profiles served on a
// loopback port.
func hoardMount(m *testenv.MinIO, bucket, bin string, extra ...string) func(b *testing.B, dir, cacheDir string) mounted {
	return func(b *testing.B, dir, cacheDir string) mounted {
		args := []string{"mount", "s3://" + bucket, dir,
			"--s3-endpoint", m.Endpoint(), "--s3-insecure", "--s3-path-style", "--s3-region", "us-east-1",
			"--cache-dir", cacheDir, "--cache-size", "16GiB", "--log-level", "warn"}
		// The debug server turns blocking and mutex sampling on, which
		// costs the mount CPU: only when profiles are asked for.
		var debug string
		if os.Getenv("HOARD_BENCH_PROFILE") != "" {
			debug = testenv.FreeAddr(b)
			args = append(args, "--debug-addr", debug)
		}
		cmd := exec.Command(bin, append(args, extra...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+m.AccessKey(), "AWS_SECRET_ACCESS_KEY="+m.SecretKey())
		mt := startMount(b, dir, cmd)
		mt.debug = debug
		return mt
	}
}

func s3fsMount(m *testenv.MinIO, bucket string) func(b *testing.B, dir, cacheDir string) mounted {
	return func(b *testing.B, dir, cacheDir string) mounted {
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

func rcloneMount(m *testenv.MinIO, bucket string) func(b *testing.B, dir, cacheDir string) mounted {
	return func(b *testing.B, dir, cacheDir string) mounted {
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
	fmt.Fprintf(w, "\n## FUSE view: %d x %d MiB shards (1 and 4 readers), %d x %d KiB files (16 readers, shuffled), 400 random 1 MiB ranges over %d x %d MiB files (%d readers)\n\n",
		len(d.shards), d.shardSize/MiB, len(d.small), d.smallSize>>10, len(d.ranged), d.rangedSize/MiB, rangeReaders)
	fmt.Fprintln(w, "| round | system | cache | ls -lR s | seq x1 MiB/s | seq x4 MiB/s | epoch files/s | epoch page-cached files/s | ranges MiB/s | p50 | p99 | peak RSS MiB | errors |")
	fmt.Fprintln(w, "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		rss := "-"
		if r.peakRSS > 0 {
			rss = strconv.FormatInt(r.peakRSS/MiB, 10)
		}
		e := "-"
		if len(r.errs) > 0 {
			e = strings.Join(r.errs, "; ")
		}
		fmt.Fprintf(w, "| %d | %s | %s | %.2f | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s |\n", r.round, r.system, r.temp,
			r.lsSeconds, r.seq1, r.seq4, r.filesPerSec, r.cachedFiles, r.rangeMiBs,
			r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond), rss, e)
	}
	fmt.Fprintln(w, "\nCPU-seconds per GiB read (this process, the FUSE server and MinIO together; ls -lR: CPU-seconds):")
	fmt.Fprintln(w, "\n| round | system | cache | ls -lR | seq x1 | seq x4 | epoch | epoch page-cached | ranges |")
	fmt.Fprintln(w, "|---:|---|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %d | %s | %s |", r.round, r.system, r.temp)
		for _, wl := range workloads {
			fmt.Fprintf(w, " %.2f |", r.cpuPerGiB[wl])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "\nOf which MinIO / the FUSE server (CPU-seconds per GiB; the rest is the readers, or the GET client, and the kernel work they pay for):")
	fmt.Fprintln(w, "\n| round | system | cache | ls -lR | seq x1 | seq x4 | epoch | epoch page-cached | ranges |")
	fmt.Fprintln(w, "|---:|---|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %d | %s | %s |", r.round, r.system, r.temp)
		for _, wl := range workloads {
			fmt.Fprintf(w, " %.2f / %.2f |", r.minioPerGiB[wl], r.serverPerGiB[wl])
		}
		fmt.Fprintln(w)
	}
	printRatios(w, rows)
}

// serverCPU is the CPU time of the processes serving a mount.
func serverCPU(pids []int) float64 {
	var s float64
	for _, p := range pids {
		s += procCPU(p)
	}
	return s
}

// printRatios prints, per round, the ratios the goals are stated in.
func printRatios(w io.Writer, rows []fuseRow) {
	find := func(round int, sys, temp string) *fuseRow {
		for i := range rows {
			if rows[i].round == round && rows[i].system == sys && (temp == "" || rows[i].temp == temp) {
				return &rows[i]
			}
		}
		return nil
	}
	last := 0
	for _, r := range rows {
		last = max(last, r.round)
	}
	for round := 1; round <= last; round++ {
		fmt.Fprintf(w, "\nround %d:\n", round)
		s3, disk := find(round, "direct S3", ""), find(round, "local disk", "")
		for _, sys := range []string{"go-fuse loopback", "go-fuse passthrough"} {
			if r := find(round, sys, ""); r != nil && disk != nil {
				fmt.Fprintf(w, "  %s / local disk: epoch %.2fx, seq x1 %.2fx, seq x4 %.2fx, ranges %.2fx; page-cached epoch %.2fx\n", sys,
					r.filesPerSec/disk.filesPerSec, r.seq1/disk.seq1, r.seq4/disk.seq4, r.rangeMiBs/disk.rangeMiBs, r.cachedFiles/disk.cachedFiles)
			}
		}
		for _, sys := range []string{"hoard before", "hoard", "s3fs", "rclone"} {
			cold, warm := find(round, sys, "cold"), find(round, sys, "warm")
			if cold != nil && s3 != nil {
				fmt.Fprintf(w, "  %s cold / direct S3: epoch %.2fx, seq x4 %.2fx, ranges %.2fx, seq x1 %.2fx\n", sys,
					cold.filesPerSec/s3.filesPerSec, cold.seq4/s3.seq4, cold.rangeMiBs/s3.rangeMiBs, cold.seq1/s3.seq1)
			}
			if warm != nil && disk != nil {
				fmt.Fprintf(w, "  %s warm / local disk: epoch %.2fx, seq x1 %.2fx, seq x4 %.2fx, ranges %.2fx; page-cached epoch %.2fx; ls -lR %.2f s (local %.2f s)\n", sys,
					warm.filesPerSec/disk.filesPerSec, warm.seq1/disk.seq1, warm.seq4/disk.seq4, warm.rangeMiBs/disk.rangeMiBs,
					warm.cachedFiles/disk.cachedFiles, warm.lsSeconds, disk.lsSeconds)
			}
		}
	}
}
