package pagestore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"hoard.dev/hoard/cachecore/objid"
)

const testPage = 64 << 10

func key(file, page int) Key {
	return Key{File: objid.Of(objid.File("/b"), fmt.Sprintf("f%d", file), "v1", 1<<40), Page: uint32(page)}
}

// pageData is deterministic content for (file, page) of length n.
func pageData(file, page, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(file), uint64(page)))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func openStore(t *testing.T, dir string, capacity int64) *Store {
	t.Helper()
	s, err := Open(Config{Dir: dir, Capacity: capacity, PageSize: testPage})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustGet(t *testing.T, s *Store, k Key, want []byte) {
	t.Helper()
	buf := make([]byte, s.PageSize())
	n, ok := s.Get(k, buf)
	if !ok {
		t.Fatalf("page %v: miss, want hit", k)
	}
	if !bytes.Equal(buf[:n], want) {
		t.Fatalf("page %v: wrong bytes (%d bytes, want %d)", k, n, len(want))
	}
}

func TestPutGet(t *testing.T) {
	s := openStore(t, t.TempDir(), 64<<20)
	sizes := []int{1, 100, 4095, 4096, 4097, testPage - 1, testPage}
	for i, n := range sizes {
		if err := s.Put(key(i, 0), pageData(i, 0, n)); err != nil {
			t.Fatalf("put %d bytes: %v", n, err)
		}
	}
	for i, n := range sizes {
		mustGet(t, s, key(i, 0), pageData(i, 0, n))
	}
	buf := make([]byte, testPage)
	if _, ok := s.Get(key(99, 0), buf); ok {
		t.Fatal("absent page: hit")
	}
	// Putting an existing page is a no-op and keeps the first bytes.
	if err := s.Put(key(0, 0), []byte("other")); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, key(0, 0), pageData(0, 0, 1))
	for _, bad := range [][]byte{nil, make([]byte, testPage+1)} {
		if err := s.Put(key(50, 0), bad); err == nil {
			t.Errorf("put %d bytes: no error", len(bad))
		}
	}
}

// TestIOModes writes and reads in every combination of direct and buffered
// I/O, including a store written buffered and reopened direct (tail pages
// without padding at the end of a file).
func TestIOModes(t *testing.T) {
	for _, c := range []struct {
		name          string
		write, reread bool // NoDirectIO when writing, when reading
	}{{"direct", false, false}, {"buffered", true, true}, {"buffered then direct", true, false}, {"direct then buffered", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(Config{Dir: dir, Capacity: 64 << 20, PageSize: testPage, NoDirectIO: c.write})
			if err != nil {
				t.Fatal(err)
			}
			sizes := []int{1, 4095, 4097, testPage}
			for i, n := range sizes {
				if err := s.Put(key(i, 0), pageData(i, 0, n)); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			s = openStoreWith(t, Config{Dir: dir, Capacity: 64 << 20, PageSize: testPage, NoDirectIO: c.reread})
			for i, n := range sizes {
				for _, buf := range [][]byte{s.NewBuffer(), make([]byte, testPage+1)[1:], s.NewBufferOf(n)} {
					got, ok := s.Get(key(i, 0), buf)
					if !ok || !bytes.Equal(buf[:got], pageData(i, 0, n)) {
						t.Fatalf("page of %d bytes: ok=%v, bytes equal=%v", n, ok, ok && bytes.Equal(buf[:got], pageData(i, 0, n)))
					}
				}
			}
		})
	}
}

// TestShortPagesReadDirect: a page shorter than a full one (a small
// object) is read with direct I/O, so that it takes no page cache beside
// the reader's own copy; full pages are read through the page cache. A
// buffer shorter than the stored page is a miss, and the page is dropped.
func TestShortPagesReadDirect(t *testing.T) {
	dir := t.TempDir()
	s := openStoreWith(t, Config{Dir: dir, Capacity: 64 << 20, PageSize: testPage})
	if !s.slabs.direct {
		t.Skipf("%s does not take O_DIRECT: nothing is read direct", dir)
	}
	sizes := []int{1, 10_000, testPage - 1}
	for i, n := range sizes {
		if err := s.Put(key(i, 0), pageData(i, 0, n)); err != nil {
			t.Fatal(err)
		}
	}
	slab := filepath.Join(dir, "slab-00000.dat")
	for i, n := range sizes {
		buf := s.NewBufferOf(n)
		if got, ok := s.Get(key(i, 0), buf); !ok || got != n || !bytes.Equal(buf, pageData(i, 0, n)) {
			t.Fatalf("short page of %d bytes: %d, %v", n, got, ok)
		}
	}
	if r := residentPages(t, slab); r != 0 {
		t.Errorf("reading short pages left %d pages of the slab file in the page cache, want 0", r)
	}
	if err := s.Put(key(9, 0), pageData(9, 0, testPage)); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get(key(9, 0), s.NewBuffer()); !ok {
		t.Fatal("full page missing")
	}
	if r := residentPages(t, slab); r == 0 {
		t.Error("a full page read left nothing in the page cache: the measure sees nothing")
	}

	if _, ok := s.Get(key(1, 0), s.NewBufferOf(9_999)); ok {
		t.Error("a page of 10,000 bytes read into a buffer of 9,999")
	}
	if s.Contains(key(1, 0)) {
		t.Error("a page longer than its object says was kept")
	}
}

// TestDirectReadsFullPages: with DirectReads, full pages too are read past
// the page cache (and WillNeed does not pull them in), with the same bytes.
func TestDirectReadsFullPages(t *testing.T) {
	dir := t.TempDir()
	s := openStoreWith(t, Config{Dir: dir, Capacity: 64 << 20, PageSize: testPage, DirectReads: true})
	if !s.slabs.direct {
		t.Skipf("%s does not take O_DIRECT: nothing is read direct", dir)
	}
	const pages = 4
	for p := range pages {
		if err := s.Put(key(1, p), pageData(1, p, testPage)); err != nil {
			t.Fatal(err)
		}
	}
	s.WillNeed([]Key{key(1, 0), key(1, 1), key(1, 2), key(1, 3)})
	for p := range pages {
		buf := s.NewBuffer()
		if n, ok := s.Get(key(1, p), buf); !ok || n != testPage || !bytes.Equal(buf[:n], pageData(1, p, testPage)) {
			t.Fatalf("page %d: %d, %v, or other bytes", p, n, ok)
		}
		// A buffer that is not the store's (unaligned) is read into by way
		// of an aligned one.
		odd := make([]byte, testPage+1)[1:]
		if n, ok := s.Get(key(1, p), odd); !ok || n != testPage || !bytes.Equal(odd, pageData(1, p, testPage)) {
			t.Fatalf("page %d into an unaligned buffer: %d, %v, or other bytes", p, n, ok)
		}
	}
	if r := residentPages(t, filepath.Join(dir, "slab-00000.dat")); r != 0 {
		t.Errorf("reading full pages with DirectReads left %d pages of the slab file in the page cache, want 0", r)
	}
}

// residentPages counts the pages of file in the page cache (mincore).
func residentPages(t *testing.T, file string) int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

func openStoreWith(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenValidates(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 16<<20)
	s.Close()
	if _, err := Open(Config{Dir: dir, Capacity: 16 << 20, PageSize: 2 * testPage}); err == nil ||
		!strings.Contains(err.Error(), "page size") {
		t.Errorf("reopen with another page size: err = %v, want one naming the page size", err)
	}
	if _, err := Open(Config{Dir: t.TempDir(), Capacity: 1 << 10, PageSize: testPage}); err == nil ||
		!strings.Contains(err.Error(), "too small") {
		t.Errorf("tiny capacity: err = %v", err)
	}
	if _, err := Open(Config{Dir: t.TempDir(), Capacity: 16 << 20, PageSize: 3000}); err == nil {
		t.Error("page size 3000: no error")
	}
}

func TestOneProcessPerDir(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 16<<20)
	if _, err := Open(Config{Dir: dir, Capacity: 16 << 20, PageSize: testPage}); err == nil ||
		!strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open of a dir in use: err = %v, want 'in use'", err)
	}
	s.Close()
	s2, err := Open(Config{Dir: dir, Capacity: 16 << 20, PageSize: testPage})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestReopenKeepsPages(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 64<<20)
	for i := 0; i < 50; i++ {
		if err := s.Put(key(i, i%3), pageData(i, i%3, 1000+i*997)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, dir, 64<<20)
	for i := 0; i < 50; i++ {
		mustGet(t, s2, key(i, i%3), pageData(i, i%3, 1000+i*997))
	}
	if _, pages := s2.Usage(); pages != 50 {
		t.Errorf("pages after reopen = %d, want 50", pages)
	}
}

// TestKillDashNine writes pages from a child process, kills it with SIGKILL
// mid-stream and checks that every page it reported as stored is served,
// byte-exact, after reopening.
func TestKillDashNine(t *testing.T) {
	if os.Getenv("HOARD_PAGESTORE_CHILD") != "" {
		childWriter(os.Getenv("HOARD_PAGESTORE_CHILD"))
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillDashNine$")
	cmd.Env = append(os.Environ(), "HOARD_PAGESTORE_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stored := 0
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(30 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "stored ")); err == nil {
			stored = n
			if stored >= 300 {
				break
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if stored < 300 {
		t.Fatalf("child reported %d pages before the deadline, want 300", stored)
	}
	s := openStore(t, dir, 256<<20)
	buf := make([]byte, testPage)
	for i := 0; i < stored; i++ {
		mustGet(t, s, key(i, 1), pageData(i, 1, testPage-i))
	}
	// Pages written after the last report may or may not be there, but any
	// that is served must be exact.
	extra := 0
	for i := stored; i < stored+1000; i++ {
		if n, ok := s.Get(key(i, 1), buf); ok {
			extra++
			if !bytes.Equal(buf[:n], pageData(i, 1, testPage-i)) {
				t.Fatalf("page %d after kill -9: wrong bytes", i)
			}
		}
	}
	t.Logf("kill -9 after %d reported pages; %d more found intact", stored, extra)
}

func childWriter(dir string) {
	s, err := Open(Config{Dir: dir, Capacity: 256 << 20, PageSize: testPage})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; i < 100000; i++ {
		if err := s.Put(key(i, 1), pageData(i, 1, testPage-i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintf(w, "stored %d\n", i+1)
		w.Flush()
	}
	time.Sleep(time.Minute)
}

// slabOffsets returns the data offset of every cached page, via the records.
func corruptAll(t *testing.T, s *Store, dir string) int {
	t.Helper()
	s.mu.Lock()
	var slots []uint32
	for i := int32(0); i < s.mu.idx.nEntries; i++ {
		if e := s.mu.idx.entry(i); e.length() > 0 {
			slots = append(slots, e.slot)
		}
	}
	s.mu.Unlock()
	for _, slot := range slots {
		n, off, _ := s.slabs.locate(slot)
		dat, _ := s.slabs.names(n)
		f, err := os.OpenFile(dat, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Flip one byte in the middle of the page.
		b := make([]byte, 1)
		f.ReadAt(b, off+100)
		b[0] ^= 0x5a
		if _, err := f.WriteAt(b, off+100); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return len(slots)
}

func TestCorruptPageIsDroppedNotReturned(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 64<<20)
	for i := 0; i < 20; i++ {
		if err := s.Put(key(i, 0), pageData(i, 0, testPage)); err != nil {
			t.Fatal(err)
		}
	}
	if n := corruptAll(t, s, dir); n != 20 {
		t.Fatalf("corrupted %d pages, want 20", n)
	}
	buf := make([]byte, testPage)
	for i := 0; i < 20; i++ {
		if _, ok := s.Get(key(i, 0), buf); ok {
			t.Fatalf("page %d: corrupt page returned as a hit", i)
		}
	}
	if got := s.Stats().Corrupt.Load(); got != 20 {
		t.Errorf("corrupt count = %d, want 20", got)
	}
	if used, pages := s.Usage(); pages != 0 || used != 0 {
		t.Errorf("after dropping: %d pages, %d bytes; want none", pages, used)
	}
	// Refetched pages are stored and served again.
	for i := 0; i < 20; i++ {
		if err := s.Put(key(i, 0), pageData(i, 0, testPage)); err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, key(i, 0), pageData(i, 0, testPage))
	}
}

func TestTornRecordIgnoredOnOpen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 64<<20)
	for i := 0; i < 10; i++ {
		s.Put(key(i, 0), pageData(i, 0, 5000))
	}
	s.Close()
	_, rec := s.slabs.names(0)
	f, err := os.OpenFile(rec, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Tear record 3: a half-written record must not load.
	f.WriteAt([]byte{1, 2, 3, 4}, 3*recordSize+2)
	f.Close()
	s2 := openStore(t, dir, 64<<20)
	if _, pages := s2.Usage(); pages != 9 {
		t.Errorf("pages = %d, want 9 (one torn record)", pages)
	}
}

// diskUsage is what du would say: allocated blocks of every file under dir.
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Sys().(*syscall.Stat_t).Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

func TestCapacityNeverExceeded(t *testing.T) {
	const capacity = 8 << 20
	dir := t.TempDir()
	s := openStore(t, dir, capacity)
	r := rand.New(rand.NewPCG(1, 2))
	var written int64
	for i := 0; i < 1500; i++ {
		n := 1 + r.IntN(testPage)
		if i%3 == 0 {
			n = testPage
		}
		if err := s.Put(key(i, 0), pageData(i, 0, n)); err != nil {
			t.Fatal(err)
		}
		written += int64(n)
		if i%50 == 0 {
			if du := diskUsage(t, dir); du > capacity {
				t.Fatalf("after %d puts: disk use %d > capacity %d", i+1, du, capacity)
			}
		}
	}
	du := diskUsage(t, dir)
	used, pages := s.Usage()
	t.Logf("wrote %d MiB into %d MiB: %d pages cached, %d bytes indexed, du %d", written>>20, capacity>>20, pages, used, du)
	if du > capacity || used > s.Budget() {
		t.Fatalf("disk use %d (indexed %d) over capacity %d", du, used, capacity)
	}
	if used < s.Budget()*8/10 {
		t.Errorf("store filled to %d of %d budget: eviction frees far too much", used, s.Budget())
	}
	// Reopening with a smaller capacity shrinks the store to fit.
	s.Close()
	s2 := openStore(t, dir, capacity/2)
	if du := diskUsage(t, dir); du > capacity/2 {
		t.Fatalf("reopen at half capacity: disk use %d > %d", du, capacity/2)
	}
	_ = s2
}

// TestScanResistance: a hot set that is read now and then survives one large
// sequential scan of pages read once.
func TestScanResistance(t *testing.T) {
	const capacity = 16 << 20 // ~250 pages of 64 KiB
	s := openStore(t, t.TempDir(), capacity)
	buf := make([]byte, testPage)
	hot := 100
	for i := 0; i < hot; i++ {
		s.Put(key(i, 0), pageData(i, 0, testPage))
	}
	for round := 0; round < 2; round++ {
		for i := 0; i < hot; i++ {
			s.Get(key(i, 0), buf)
		}
	}
	// A scan of 4x the capacity, interleaved with reads of the hot set.
	for i := 0; i < 1000; i++ {
		s.Put(key(10000+i, 0), pageData(10000+i, 0, testPage))
		if i%100 == 99 {
			for h := 0; h < hot; h++ {
				if _, ok := s.Get(key(h, 0), buf); !ok {
					s.Put(key(h, 0), pageData(h, 0, testPage))
				}
			}
		}
	}
	hits := 0
	for i := 0; i < hot; i++ {
		if _, ok := s.Get(key(i, 0), buf); ok {
			hits++
		}
	}
	t.Logf("hot set hits after a 4x-capacity scan: %d/%d", hits, hot)
	if hits < hot*9/10 {
		t.Errorf("hot set hits %d/%d after scan, want >= 90%%", hits, hot)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := openStore(t, t.TempDir(), 4<<20)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 0))
			buf := make([]byte, testPage)
			for i := 0; i < 400; i++ {
				f := r.IntN(200)
				n := 1000 + f*300
				if nb, ok := s.Get(key(f, 0), buf); ok {
					if !bytes.Equal(buf[:nb], pageData(f, 0, n)) {
						errs <- fmt.Errorf("page %d: wrong bytes under concurrency", f)
						return
					}
					continue
				}
				if err := s.Put(key(f, 0), pageData(f, 0, n)); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if used, _ := s.Usage(); used > s.Budget() {
		t.Fatalf("used %d > budget %d", used, s.Budget())
	}
}

// indexBytesPerPage fills an index with n synthetic pages and returns the heap
// it takes per page, ghost set included (a quarter of the pages evicted).
func indexBytesPerPage(n int) float64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	x := newIndex(int64(n)*4096, 4096, uint32(n))
	for i := 0; i < n; i++ {
		slot, _ := x.reserve(4096)
		var id objid.ID
		binary.LittleEndian.PutUint64(id[:], uint64(i)*0x9e3779b97f4a7c15)
		binary.LittleEndian.PutUint64(id[8:], uint64(i))
		x.insert(Key{File: id, Page: uint32(i & 15)}, slot, 4096, 0)
	}
	vs := x.evictFor(int64(n/4)*4096, nil)
	x.releaseSlots(vs)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(x)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(x.len())
}

func TestIndexMemoryPerPage(t *testing.T) {
	per := indexBytesPerPage(1_000_000)
	t.Logf("index memory: %.1f bytes per cached page (1M pages)", per)
	if per > 100 {
		t.Errorf("index takes %.1f bytes per page, goal < 100", per)
	}
}

// BenchmarkIndexMemory reports the index's heap per page at ten million pages.
func BenchmarkIndexMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.ReportMetric(indexBytesPerPage(10_000_000), "bytes/page")
	}
}

func BenchmarkGetHit(b *testing.B) {
	s, err := Open(Config{Dir: b.TempDir(), Capacity: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 64; i++ {
		s.Put(key(i, 0), pageData(i, 0, DefaultPageSize))
	}
	b.SetBytes(DefaultPageSize)
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, DefaultPageSize)
		i := 0
		for pb.Next() {
			if _, ok := s.Get(key(i%64, 0), buf); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

// TestPutWaitsForWritesInFlight: when every byte of the budget is reserved
// by writes in flight (nothing to evict), a Put waits for one of them to
// complete and then stores its page, instead of polling or failing.
func TestPutWaitsForWritesInFlight(t *testing.T) {
	s := openStore(t, t.TempDir(), 2<<20)
	need := s.mu.idx.diskBytes(testPage)
	// Reserve the whole budget, as writes that have not finished would.
	var held []victim
	s.mu.Lock()
	for {
		slot, ok := s.mu.idx.reserve(need)
		if !ok {
			break
		}
		held = append(held, victim{slot: slot, bytes: need})
	}
	s.mu.Unlock()
	if len(held) == 0 {
		t.Fatal("nothing reserved")
	}
	done := make(chan error, 1)
	go func() { done <- s.Put(key(1, 0), pageData(1, 0, testPage)) }()
	select {
	case err := <-done:
		t.Fatalf("Put returned %v while the budget was reserved by writes in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	s.release(held[:1]) // one write in flight gives up its reservation
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Put still waiting after a write in flight completed")
	}
	mustGet(t, s, key(1, 0), pageData(1, 0, testPage))
	s.release(held[1:])
}
