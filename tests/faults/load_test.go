package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadData is the load's data set: 20,000 small objects of 4 to 16 KiB
// times HOARD_FAULTS_SCALE, or HOARD_FAULTS_LOAD_FILES of them (100000 is
// the figure: putting them takes about 2 minutes here, the cold
// epoch 2 more), and 8 shards of 128 MiB.
func loadData() datasetSpec {
	files := int(20000 * scale())
	if n, err := strconv.Atoi(os.Getenv("HOARD_FAULTS_LOAD_FILES")); err == nil && n > 0 && n <= 1_000_000 {
		files = n
	}
	return datasetSpec{
		smallFiles: files, smallMin: 4 << 10, smallMax: 16 << 10, filesPerDir: 1000,
		shards: 8, shardSize: 128 * MiB,
	}
}

// TestLoad runs 64 readers over the small objects and 8 over the shards,
// spread over the mounts of 3 nodes, for a bounded time after a first
// (cold) epoch, and samples the RSS and open files of every process.
func TestLoad(t *testing.T) {
	suite(t)
	in := newInfra(t, 3, loadData())
	c := in.newCluster(t, clusterOptions{workers: 3, mountArgs: []string{"--hot-cache", "128MiB"}})
	duration := scaled(60 * time.Second)
	if d, err := time.ParseDuration(os.Getenv("HOARD_FAULTS_SOAK")); err == nil && d > 0 {
		duration = d
	}
	procs := map[string]int{"minio": in.minio.Pid()}
	for _, w := range c.workers {
		procs["worker "+w.node.Name] = w.pid()
	}
	for _, m := range c.mounts {
		procs["mount "+m.node.Name] = m.pid()
	}
	for _, co := range in.coords {
		procs["coordinator "+co.node.Name] = co.pid()
	}
	sampler := startSampler(procs, 5*time.Second)
	defer sampler.stop()

	// 64 small-file readers and 8 shard readers, spread over the mounts:
	// a first epoch from cold, then the measured run.
	small, shards := newRecorder(), newRecorder()
	start := time.Now()
	var cold sync.WaitGroup
	per := len(in.data.small)/len(c.mounts) + 1
	for i, m := range c.mounts {
		part := in.data.small[min(i*per, len(in.data.small)):min((i+1)*per, len(in.data.small))]
		rs := startSmallOnce(m, part, 64/len(c.mounts)+1, small)
		cold.Add(1)
		go func() { defer cold.Done(); rs.wg.Wait() }()
	}
	cold.Wait()
	coldTook := time.Since(start)
	coldSum := small.summary()
	t.Logf("first epoch (cold) of %d small objects: %v in %v", len(in.data.small), coldSum, coldTook.Round(time.Second))

	small, shards = newRecorder(), newRecorder()
	var running []*readers
	for i, m := range c.mounts {
		n := 64 / len(c.mounts)
		if i < 64%len(c.mounts) {
			n++
		}
		running = append(running, startSmall(m, in.data.small, n, small))
		ns := 8 / len(c.mounts)
		if i < 8%len(c.mounts) {
			ns++
		}
		running = append(running, startShards(m, rotate(in.data.shards, i*3), ns, shards))
	}
	// Warm-up: the hot tiers fill with shard pages and readahead; memory
	// and descriptors must not grow after it.
	warmup := min(20*time.Second, duration/3)
	time.Sleep(warmup)
	sampler.take(procs)
	sampler.mark("warm")
	small.reset()
	shards.reset()
	measured := time.Now()
	time.Sleep(duration)
	for _, rs := range running {
		rs.stop()
	}
	took := time.Since(measured)
	sampler.stop()
	ss, hs := small.summary(), shards.summary()
	total := float64(ss.bytes+hs.bytes) / (1 << 30)
	lines := []string{
		fmt.Sprintf("Run of %s on %s: %d small objects of 4 to 16 KiB and %d shards of %d MiB, 3 nodes (worker and mount each), mounts with a 128 MiB hot tier, readers with O_DIRECT.",
			time.Now().UTC().Format("2006-01-02 15:04 MST"), machine(), len(in.data.small), len(in.data.shards), in.data.shards[0].size/MiB),
		"",
		fmt.Sprintf("First epoch, cold (64 readers, every object fetched once from MinIO): %d objects in %v, %.0f files/s, %d failed, %d wrong bytes.",
			coldSum.reads, coldTook.Round(time.Second), float64(coldSum.reads)/coldTook.Seconds(), coldSum.failed, coldSum.wrong),
		"",
		fmt.Sprintf("Then, after a %v warm-up, %v warm (the workers hold everything; the hot tiers a part):", warmup.Round(time.Second), took.Round(time.Second)),
		"",
		"| readers | reads | per second | MiB/s | p50 | p99 | p99.9 | longest | failed | wrong bytes |",
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
		loadRow("64 over small objects (a read: a whole object)", ss, took),
		loadRow("8 over shards (a read: 1 MiB)", hs, took),
		"",
		fmt.Sprintf("All readers: %.2f GiB/s.", total/took.Seconds()),
		"",
		"Every process's resident memory and open files (sampled every 5 s): after the warm-up, at the end, and the most seen:",
		"",
		"| process | RSS after warm-up | RSS at the end | RSS max | fds after warm-up | fds at the end | fds max |",
		"|---|---:|---:|---:|---:|---:|---:|",
	}
	names := make([]string, 0, len(procs))
	for name := range procs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		w, e, m := sampler.at("warm", name), sampler.last(name), sampler.peak(name)
		lines = append(lines, fmt.Sprintf("| %s | %d MiB | %d MiB | %d MiB | %d | %d | %d |", name, w.rss>>20, e.rss>>20, m.rss>>20, w.fds, e.fds, m.fds))
		// Bounded: no growth after warm-up beyond a quarter and 64 MiB of
		// memory (GC cycles), 64 descriptors (connections in a pool).
		if e.rss > w.rss+w.rss/4+64<<20 {
			t.Errorf("%s: RSS grew from %d MiB after warm-up to %d MiB", name, w.rss>>20, e.rss>>20)
		}
		if e.fds > w.fds+64 {
			t.Errorf("%s: open files grew from %d after warm-up to %d", name, w.fds, e.fds)
		}
	}
	for _, l := range lines {
		t.Log(l)
	}
	for _, s := range []summary{coldSum, ss, hs} {
		if s.failed > 0 || s.wrong > 0 {
			t.Errorf("%d failed reads, %d wrong bytes; want 0", s.failed, s.wrong)
		}
	}
	writeSection(t, loadReportBegin, loadReportEnd, strings.Join(lines, "\n")+"\n")
}

func loadRow(what string, s summary, took time.Duration) string {
	return fmt.Sprintf("| %s | %d | %.0f | %.1f | %v | %v | %v | %v | %d | %d |", what, s.reads, float64(s.reads)/took.Seconds(),
		float64(s.bytes)/MiB/took.Seconds(), rnd(s.p50), rnd(s.p99), rnd(s.p999), rnd(s.longest), s.failed, s.wrong)
}

// rotate returns os starting at i.
func rotate(os []object, i int) []object {
	i %= len(os)
	return append(append([]object{}, os[i:]...), os[:i]...)
}

// sample is one process's RSS and open files.
type sample struct {
	rss int64
	fds int
}

// sampler reads the RSS and open files of processes periodically.
type sampler struct {
	stopOnce sync.Once
	done     chan struct{}
	wg       sync.WaitGroup

	mu struct {
		sync.Mutex
		last, peak map[string]sample
		marks      map[string]map[string]sample
	}
}

func startSampler(procs map[string]int, every time.Duration) *sampler {
	s := &sampler{done: make(chan struct{})}
	s.mu.last, s.mu.peak, s.mu.marks = map[string]sample{}, map[string]sample{}, map[string]map[string]sample{}
	s.take(procs)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.take(procs)
			}
		}
	}()
	return s
}

func (s *sampler) take(procs map[string]int) {
	for name, pid := range procs {
		v, ok := readSample(pid)
		if !ok {
			continue
		}
		s.mu.Lock()
		s.mu.last[name] = v
		p := s.mu.peak[name]
		s.mu.peak[name] = sample{rss: max(p.rss, v.rss), fds: max(p.fds, v.fds)}
		s.mu.Unlock()
	}
}

// mark remembers the last samples under a name.
func (s *sampler) mark(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]sample{}
	for k, v := range s.mu.last {
		m[k] = v
	}
	s.mu.marks[name] = m
}

func (s *sampler) at(mark, name string) sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.marks[mark][name]
}

func (s *sampler) last(name string) sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.last[name]
}

func (s *sampler) peak(name string) sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.peak[name]
}

func (s *sampler) stop() {
	s.stopOnce.Do(func() { close(s.done) })
	s.wg.Wait()
}

// readSample reads pid's resident memory (VmRSS) and open descriptors.
func readSample(pid int) (sample, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return sample{}, false
	}
	var v sample
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			v.rss = kb << 10
		}
	}
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		return sample{}, false
	}
	v.fds = len(fds)
	return v, true
}
