package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// readTimeout bounds one read: a read that has not returned after it
// counts as failed (hung). Its goroutine is left to end with the mount.
const readTimeout = 2 * time.Minute

// read is one read a reader made: a whole small file, or one MiB of a
// shard.
type read struct {
	start, end time.Duration // since the recorder's start
	bytes      int64
	wrong      int64 // bytes that differ from the data set's
	failed     bool
}

// failure is a read that failed, for the report.
type failure struct {
	at   time.Duration
	node string
	key  string
	err  error
}

// recorder records the reads of a run. It keeps every read up to
// maxReads (beyond that only the counters and the latency histogram).
type recorder struct {
	start time.Time
	hist  histogram

	attempted, failed, wrong, bytes atomic.Int64

	mu struct {
		sync.Mutex
		reads    []read
		failures []failure
		longest  time.Duration
	}
}

const maxReads = 2_000_000

func newRecorder() *recorder { return &recorder{start: time.Now()} }

// since is t on the recorder's clock.
func (r *recorder) since(t time.Time) time.Duration { return t.Sub(r.start) }

func (r *recorder) add(rd read, node, key string, err error) {
	r.attempted.Add(1)
	r.bytes.Add(rd.bytes)
	if rd.failed {
		r.failed.Add(1)
	}
	r.wrong.Add(rd.wrong)
	d := rd.end - rd.start
	r.hist.add(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.mu.reads) < maxReads {
		r.mu.reads = append(r.mu.reads, rd)
	}
	if d > r.mu.longest {
		r.mu.longest = d
	}
	if rd.failed && len(r.mu.failures) < 1000 {
		r.mu.failures = append(r.mu.failures, failure{at: rd.start, node: node, key: key, err: err})
	}
}

// reset forgets every read so far (the run goes on).
func (r *recorder) reset() {
	r.attempted.Store(0)
	r.failed.Store(0)
	r.wrong.Store(0)
	r.bytes.Store(0)
	r.hist.mu.Lock()
	r.hist.counts, r.hist.n = [400]int64{}, 0
	r.hist.mu.Unlock()
	r.mu.Lock()
	r.mu.reads, r.mu.failures, r.mu.longest = nil, nil, 0
	r.mu.Unlock()
}

// longest is the longest read so far.
func (r *recorder) longest() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.longest
}

func (r *recorder) failures() []failure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]failure(nil), r.mu.failures...)
}

// recovery is how long after from reads were disturbed: the end of the
// last read that overlapped [from, to) and failed or took longer than
// slow, less from; 0 if none was.
func (r *recorder) recovery(from, to time.Time, slow time.Duration) time.Duration {
	f, t := r.since(from), r.since(to)
	r.mu.Lock()
	defer r.mu.Unlock()
	var last time.Duration
	for _, rd := range r.mu.reads {
		if rd.end <= f || rd.start >= t {
			continue
		}
		if rd.failed || rd.wrong > 0 || rd.end-rd.start > slow {
			last = max(last, rd.end-f)
		}
	}
	return last
}

// lastFailure is when the last failed read ended (zero if none did).
func (r *recorder) lastFailure() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var last time.Duration
	for _, rd := range r.mu.reads {
		if rd.failed && rd.end > last {
			last = rd.end
		}
	}
	if last == 0 {
		return time.Time{}
	}
	return r.start.Add(last)
}

// window counts the reads that started in [from, to).
func (r *recorder) window(from, to time.Time) (n, failed int64) {
	f, t := r.since(from), r.since(to)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rd := range r.mu.reads {
		if rd.start >= f && rd.start < t {
			n++
			if rd.failed {
				failed++
			}
		}
	}
	return n, failed
}

// histogram counts durations in buckets 5% apart, from 10 µs to 20 min.
type histogram struct {
	mu     sync.Mutex
	counts [400]int64
	n      int64
}

func bucketOf(d time.Duration) int {
	s := d.Seconds()
	if s <= 1e-5 {
		return 0
	}
	return min(int(math.Log(s/1e-5)/math.Log(1.05))+1, 399)
}

func (h *histogram) add(d time.Duration) {
	h.mu.Lock()
	h.counts[bucketOf(d)]++
	h.n++
	h.mu.Unlock()
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	want := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= want {
			return time.Duration(1e-5 * math.Pow(1.05, float64(i)) * float64(time.Second))
		}
	}
	return 0
}

// readers is a set of reader goroutines; stop ends them and waits.
type readers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (rs *readers) stop() {
	rs.cancel()
	rs.wg.Wait()
}

// startSmall starts n readers of an epoch of files through mount m: each
// epoch reads every file once, in a random order, n at a time; epochs
// follow each other until stop.
func startSmall(m *mount, files []object, n int, rec *recorder) *readers {
	ctx, cancel := context.WithCancel(context.Background())
	rs := &readers{cancel: cancel}
	var next atomic.Int64
	order := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)).Perm(len(files))
	for range n {
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			buf := alignedBuffer(MiB)
			for ctx.Err() == nil {
				o := files[order[next.Add(1)%int64(len(files))]]
				if !readOne(m, o, 0, o.size, buf, rec) {
					time.Sleep(failedPause)
				}
			}
		}()
	}
	return rs
}

// startShards starts n sequential readers of the shards through mount m,
// reading 1 MiB at a time, each starting at another shard.
func startShards(m *mount, shards []object, n int, rec *recorder) *readers {
	ctx, cancel := context.WithCancel(context.Background())
	rs := &readers{cancel: cancel}
	for i := range n {
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			buf := alignedBuffer(MiB)
			for s := i; ctx.Err() == nil; s++ {
				if !readShard(ctx, m, shards[s%len(shards)], buf, rec) {
					time.Sleep(failedPause)
				}
			}
		}()
	}
	return rs
}

// readShard reads o sequentially, one MiB per read, each read recorded,
// and reports whether every read succeeded.
func readShard(ctx context.Context, m *mount, o object, buf []byte, rec *recorder) bool {
	path := m.root + "/" + o.key
	f, err := openDirect(path)
	if err != nil {
		now := rec.since(time.Now())
		rec.add(read{start: now, end: now, failed: true}, m.node.Name, o.key, err)
		return false
	}
	defer f.Close()
	for off := int64(0); off < o.size && ctx.Err() == nil; off += MiB {
		start := time.Now()
		rd, err := timed(func() (read, error) { return readBlock(f, o, off, buf) })
		rd.start, rd.end = rec.since(start), rec.since(time.Now())
		rec.add(rd, m.node.Name, fmt.Sprintf("%s@%d", o.key, off), err)
		if rd.failed {
			return false // the file may be broken for good: open it again
		}
	}
	return true
}

// failedPause is how long a reader waits after a failed read, so that a
// dead mount does not turn the readers into a busy loop.
const failedPause = 20 * time.Millisecond

// readOne reads a whole file (open, read, close), records it and reports
// whether it succeeded.
func readOne(m *mount, o object, _, _ int64, buf []byte, rec *recorder) bool {
	start := time.Now()
	rd, err := timed(func() (read, error) {
		f, err := openDirect(m.root + "/" + o.key)
		if err != nil {
			return read{failed: true}, err
		}
		defer f.Close()
		var total read
		for off := int64(0); off < o.size || (o.size == 0 && off == 0); off += MiB {
			rd, err := readBlock(f, o, off, buf)
			total.bytes += rd.bytes
			total.wrong += rd.wrong
			if err != nil || rd.failed {
				total.failed = true
				return total, err
			}
			if o.size == 0 {
				break
			}
		}
		return total, nil
	})
	rd.start, rd.end = rec.since(start), rec.since(time.Now())
	rec.add(rd, m.node.Name, o.key, err)
	return !rd.failed
}

// readBlock reads the MiB of o at off (less at the end) and compares it
// with the data set: wrong counts the bytes that differ, and a short or
// long read is failed.
func readBlock(f *os.File, o object, off int64, buf []byte) (read, error) {
	want := min(MiB, o.size-off)
	ask := want
	if off+want == o.size {
		ask++ // the last block: one byte more shows a file longer than the object
	}
	n, err := io.ReadFull(io.NewSectionReader(f, off, ask), buf[:ask])
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	rd := read{bytes: int64(n)}
	switch {
	case err != nil:
		rd.failed = true
		return rd, err
	case int64(n) != want:
		rd.failed = true
		return rd, fmt.Errorf("read %s at %d: %d bytes, want %d", o.key, off, n, want)
	}
	if crc32.Checksum(buf[:n], castagnoli) != o.sums[off/MiB] {
		exp := o.content()[off : off+want]
		for i := range exp {
			if exp[i] != buf[i] {
				rd.wrong++
			}
		}
		if rd.wrong == 0 && !bytes.Equal(exp, buf[:n]) {
			rd.wrong = int64(n)
		}
	}
	return rd, nil
}

// timed runs f, giving up after readTimeout.
func timed(f func() (read, error)) (read, error) {
	type result struct {
		rd  read
		err error
	}
	ch := make(chan result, 1)
	go func() {
		rd, err := f()
		ch <- result{rd, err}
	}()
	select {
	case r := <-ch:
		return r.rd, r.err
	case <-time.After(readTimeout):
		return read{failed: true}, fmt.Errorf("no answer within %v", readTimeout)
	}
}

// openDirect opens path for reading past the page cache (O_DIRECT), so
// that every read reaches the mount: a reader of a cached file would test
// the kernel, not hoard. Where O_DIRECT is refused it opens normally.
func openDirect(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if errors.Is(err, syscall.EINVAL) {
		return os.Open(path)
	}
	return f, err
}

// alignedBuffer returns n+1 bytes (one more to see a long read) starting
// at a 4096-byte boundary, as O_DIRECT wants.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+1+8192)
	off := 4096 - int(uintptr(unsafe.Pointer(&b[0]))&4095)
	return b[off : off+n+1]
}

// summary is the figures of a recorder, for logs and the report.
type summary struct {
	reads, failed, wrong int64
	bytes                int64
	longest              time.Duration
	p50, p99, p999       time.Duration
}

func (r *recorder) summary() summary {
	return summary{
		reads: r.attempted.Load(), failed: r.failed.Load(), wrong: r.wrong.Load(), bytes: r.bytes.Load(),
		longest: r.longest(), p50: r.hist.quantile(0.5), p99: r.hist.quantile(0.99), p999: r.hist.quantile(0.999),
	}
}

func (s summary) String() string {
	return fmt.Sprintf("%d reads (%.0f MiB), %d failed, %d wrong bytes; latency p50 %v p99 %v p99.9 %v, longest %v",
		s.reads, float64(s.bytes)/MiB, s.failed, s.wrong, rnd(s.p50), rnd(s.p99), rnd(s.p999), rnd(s.longest))
}

// rnd rounds a duration for people.
func rnd(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// sortedFailures orders failures by time.
func sortedFailures(fs []failure) []failure {
	sort.Slice(fs, func(i, j int) bool { return fs[i].at < fs[j].at })
	return fs
}

// startSmallOnce starts n readers that read each file once, then end.
func startSmallOnce(m *mount, files []object, n int, rec *recorder) *readers {
	ctx, cancel := context.WithCancel(context.Background())
	rs := &readers{cancel: cancel}
	var next atomic.Int64
	for range n {
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			buf := alignedBuffer(MiB)
			for i := next.Add(1) - 1; i < int64(len(files)) && ctx.Err() == nil; i = next.Add(1) - 1 {
				readOne(m, files[i], 0, files[i].size, buf, rec)
			}
		}()
	}
	return rs
}

func itoa[T ~int | ~int64](v T) string { return fmt.Sprint(v) }
