package pagestore

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// DefaultPageSize is the size of a full page.
	DefaultPageSize = 1 << 20
	// formatVersion 2: 128-bit SHA-256 object IDs, 48-byte records, page
	// CRCs over key and data. A format 1 directory is emptied on Open.
	formatVersion = 2
	// slabFileBytes is the apparent size of one page file.
	slabFileBytes = 64 << 30
	// metaReserve is kept out of the budget for meta.json, directory blocks and
	// the last partial block of each record file.
	metaReserve = 256 << 10
)

// Config says where a store lives and how big it may grow.
type Config struct {
	Dir      string
	Capacity int64 // hard bound on bytes on disk, records included
	PageSize int   // 0 means DefaultPageSize; fixed for the life of Dir
	// NoDirectIO makes page I/O go through the kernel page cache even where
	// O_DIRECT works.
	NoDirectIO bool
	// DirectReads reads full pages with O_DIRECT too (short pages always
	// are, where the filesystem takes it), past the kernel page cache: for
	// a store whose one reader keeps what it read in a page cache of its
	// own (the embedded cache of `hoard mount`, whose FUSE files are page
	// cached by the kernel), where a buffered read costs a second copy of
	// every page in memory, and with it about a fifth of the mount's CPU on
	// warm sequential reads (fresh page-cache pages are dear on a VM). A
	// worker that serves many clients keeps full pages buffered: the page
	// cache is its memory tier for pages several clients read.
	DirectReads bool
	// FaultRetry is how long the store bypasses a failing disk before it
	// tries it again (default DefaultFaultRetry).
	FaultRetry time.Duration
	Logger     *slog.Logger
}

// Stats are counters of a store's activity, safe to read at any time.
type Stats struct {
	Hits, Misses, Corrupt, Evictions, Puts atomic.Int64
	// ReadErrors and WriteErrors count disk operations that failed (the
	// store degrades, see Health); Bypassed counts Gets and Puts that did not
	// touch the disk because it is faulted.
	ReadErrors, WriteErrors, Bypassed atomic.Int64
}

// Store is a page cache on local disk. It is safe for concurrent use.
type Store struct {
	pageSize   int
	lock       *os.File // flock'd: one process per cache dir
	slabs      *slabs
	log        *slog.Logger
	stats      Stats
	faultRetry time.Duration

	mu struct {
		sync.Mutex
		idx *index
		// written, when not nil, is closed when a write in flight
		// completes (its page is indexed or its reservation released):
		// a Put that found the whole budget reserved by writes in flight
		// waits on it. Made by the first such waiter, so a store nobody
		// waits on allocates nothing.
		written chan struct{}
		// health is the disk's state; while it is faulted, operations skip
		// the disk until the next probe (see skipDiskLocked).
		health                Health
		probeRead, probeWrite time.Time
	}
}

// fullWait bounds how long a Put waits for writes in flight to leave it
// room: they finish in one slab write each, so a store still full of them
// after this is stuck on its disk.
const fullWait = 10 * time.Second

type meta struct {
	Format   int `json:"format"`
	PageSize int `json:"page_size"`
}

// Open opens or creates the store in cfg.Dir and loads the index of the pages
// already there.
func Open(cfg Config) (*Store, error) {
	if cfg.PageSize == 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.PageSize < 4096 || cfg.PageSize&(cfg.PageSize-1) != 0 || cfg.PageSize > 64<<20 {
		return nil, fmt.Errorf("page size %d: must be a power of two between 4 KiB and 64 MiB", cfg.PageSize)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FaultRetry <= 0 {
		cfg.FaultRetry = DefaultFaultRetry
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create cache dir: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkMeta(cfg.Dir, cfg.PageSize); err != nil {
		lock.Close()
		return nil, err
	}
	sparse, err := probeSparse(cfg.Dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	blockSize := int64(cfg.PageSize) // without hole punching a used slot keeps its blocks
	if sparse {
		var st unix.Statfs_t
		if err := unix.Statfs(cfg.Dir, &st); err != nil {
			return nil, fmt.Errorf("statfs cache dir: %w", err)
		}
		blockSize = max(st.Bsize, 512)
	}
	budget, maxSlots := plan(cfg.Capacity, blockSize, int64(cfg.PageSize))
	if budget < int64(cfg.PageSize) {
		lock.Close()
		return nil, fmt.Errorf("capacity %d bytes: too small, need at least %d for one page and the index",
			cfg.Capacity, cfg.Capacity-budget+int64(cfg.PageSize))
	}

	s := &Store{
		pageSize:   cfg.PageSize,
		log:        cfg.Logger,
		lock:       lock,
		faultRetry: cfg.FaultRetry,
		slabs: &slabs{
			dir:          cfg.Dir,
			pageSize:     int64(cfg.PageSize),
			slotsPerFile: uint32(slabFileBytes / cfg.PageSize),
			sparse:       sparse,
			direct:       !cfg.NoDirectIO && probeDirect(cfg.Dir),
		},
	}
	s.slabs.directFull = s.slabs.direct && cfg.DirectReads
	s.mu.idx = newIndex(budget, blockSize, maxSlots)
	if err := s.load(); err != nil {
		s.slabs.close()
		lock.Close()
		return nil, err
	}
	return s, nil
}

// plan splits capacity into the page budget and the number of slots whose
// records fit beside it: each page takes at least one block plus one record.
func plan(capacity, blockSize, pageSize int64) (budget int64, maxSlots uint32) {
	avail := capacity - metaReserve
	if avail <= 0 {
		return 0, 0
	}
	slots := avail / (blockSize + recordSize)
	// Each record file ends in a partial block.
	files := slots/(slabFileBytes/pageSize) + 1
	avail -= files * blockSize
	slots = max(avail/(blockSize+recordSize), 0)
	slots = min(slots, 1<<31)
	return avail - slots*recordSize, uint32(slots)
}

func checkMeta(dir string, pageSize int) error {
	name := filepath.Join(dir, "meta.json")
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		b, _ = json.Marshal(meta{Format: formatVersion, PageSize: pageSize})
		if err := os.WriteFile(name, b, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s is not a hoard cache dir (%v): use an empty directory", dir, err)
	}
	if m.Format == 1 {
		// Format 1 keyed pages by a 96-bit xxhash identity that could be
		// forged: none of its pages can be trusted, so start empty.
		return resetFormat1(dir, pageSize)
	}
	if m.Format != formatVersion {
		return fmt.Errorf("%s holds cache format %d, this build reads %d: use an empty directory", dir, m.Format, formatVersion)
	}
	if m.PageSize != pageSize {
		return fmt.Errorf("%s was created with page size %d, not %d: set the page size to %d or use an empty directory",
			dir, m.PageSize, pageSize, m.PageSize)
	}
	return nil
}

// resetFormat1 removes the slab files of a format 1 directory and marks it
// format 2. Only files named like slabs are removed.
func resetFormat1(dir string, pageSize int) error {
	names, err := filepath.Glob(filepath.Join(dir, "slab-*"))
	if err != nil {
		return err
	}
	for _, n := range names {
		if b := filepath.Base(n); strings.HasSuffix(b, ".dat") || strings.HasSuffix(b, ".rec") {
			if err := os.Remove(n); err != nil {
				return fmt.Errorf("empty format 1 cache dir: %w", err)
			}
		}
	}
	b, _ := json.Marshal(meta{Format: formatVersion, PageSize: pageSize})
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, "meta.json"), err)
	}
	return nil
}

// load rebuilds the index from the record files.
func (s *Store) load() error {
	start := time.Now()
	idx := s.mu.idx
	var drop []uint32
	used := make(map[uint32]bool)
	next, err := s.slabs.scan(func(slot uint32, r record) {
		_, dup := idx.peek(r.key)
		if dup || slot >= idx.maxSlots || r.length == 0 || int(r.length) > s.pageSize {
			drop = append(drop, slot)
			return
		}
		used[slot] = true
		idx.used += idx.diskBytes(r.length)
		idx.insert(r.key, slot, r.length, r.crc)
	})
	if err != nil {
		return err
	}
	for _, slot := range drop {
		if err := s.slabs.free(slot); err != nil {
			return err
		}
	}
	idx.nextSlot = min(next, idx.maxSlots)
	for slot := idx.nextSlot; slot > 0; slot-- {
		if !used[slot-1] {
			idx.freeSlots = append(idx.freeSlots, slot-1)
		}
	}
	// A smaller capacity than last time: shrink to fit before serving.
	victims := idx.evictFor(0, nil)
	for _, v := range victims {
		if err := s.slabs.free(v.slot); err != nil {
			return err
		}
	}
	idx.releaseSlots(victims)
	s.log.Info("page store opened", "dir", s.slabs.dir, "pages", idx.len(), "bytes", idx.used,
		"budget", idx.budget, "sparse", s.slabs.sparse, "direct_io", s.slabs.direct, "dropped", len(drop)+len(victims), "took", time.Since(start))
	return nil
}

// PageSize is the size of a full page.
func (s *Store) PageSize() int { return s.pageSize }

// NewBuffer returns a page buffer for Get that allows direct I/O: aligned, and
// as long as the page size. Get works with any buffer; this one saves a copy.
func (s *Store) NewBuffer() []byte { return alignedBuffer(s.pageSize) }

// NewBufferOf returns a buffer for Get of a page the caller knows to be n
// bytes long (an object's last page, often much shorter than a full one): n
// bytes, aligned and with room for whole dioAlign blocks, so that a direct
// read fills it without a copy.
func (s *Store) NewBufferOf(n int) []byte { return alignedBuffer(roundUp(n))[:n] }

// Stats returns the store's counters.
func (s *Store) Stats() *Stats { return &s.stats }

// Usage returns the bytes of disk the pages take and the number of pages.
func (s *Store) Usage() (bytes int64, pages int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.idx.used, s.mu.idx.len()
}

// Budget is the bytes of page data the store holds at most.
func (s *Store) Budget() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.idx.budget
}

// WillNeed has the kernel start reading the cached pages of keys from disk
// at once (posix_fadvise WILLNEED), so that the Gets that follow find them
// in memory instead of reading one page at a time: a sequential reader's
// pages lie in slots written in fetch order, which the kernel's readahead
// over one slab cannot guess. Keys not cached are skipped, and so are short
// pages, which are read direct (see slabs.read).
func (s *Store) WillNeed(keys []Key) {
	slots := make([]uint32, 0, len(keys))
	s.mu.Lock()
	for _, k := range keys {
		if e, ok := s.mu.idx.peek(k); ok && s.slabs.buffered(int64(e.length())) {
			slots = append(slots, e.slot)
		}
	}
	s.mu.Unlock()
	for _, slot := range slots {
		s.slabs.willNeed(slot)
	}
}

// Contains reports whether page k is cached, without counting a hit.
// While the disk fails reads (FaultIO) nothing is, so that a caller that
// skips cached pages fetches them.
func (s *Store) Contains(k Key) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.health.Fault == FaultIO {
		return false
	}
	_, ok := s.mu.idx.peek(k)
	return ok
}

// Get reads page k into buf and returns its length. buf holds PageSize
// bytes (see NewBuffer), or the page's length where the caller knows it
// (NewBufferOf); Get may use all of buf's capacity. ok is false on a miss,
// which includes a page that failed its checksum or is longer than buf
// (that page is dropped and the caller refetches it) and any page while the
// disk fails reads (see Health).
func (s *Store) Get(k Key, buf []byte) (n int, ok bool) {
	n, _, ok = s.GetSum(k, buf)
	return n, ok
}

// GetSum is Get that also returns the page's checksum (Checksum of k and the
// page's bytes), verified against the bytes just read.
func (s *Store) GetSum(k Key, buf []byte) (n int, sum uint32, ok bool) {
	s.mu.Lock()
	if s.skipDiskLocked(true, time.Now()) {
		s.mu.Unlock()
		s.stats.Bypassed.Add(1)
		s.stats.Misses.Add(1)
		return 0, 0, false
	}
	e, ok := s.mu.idx.lookup(k)
	s.mu.Unlock()
	if !ok {
		s.stats.Misses.Add(1)
		return 0, 0, false
	}
	if int(e.length()) > len(buf) {
		// Longer than the caller's object says its page is: not that page.
		s.stats.Misses.Add(1)
		s.dropIfUnchanged(k, e, fmt.Errorf("page of %d bytes, longer than the %d expected", e.length(), len(buf)))
		return 0, 0, false
	}
	page := buf[:e.length()]
	err := s.slabs.read(e.slot, page)
	if err == nil && pageChecksum(k, page) == e.crc {
		s.stats.Hits.Add(1)
		return len(page), e.crc, true
	}
	s.stats.Misses.Add(1)
	if err != nil && !errors.Is(err, errShortPage) {
		// The disk failed, not the page: keep its entry (freeing the
		// slot would fail too) and stop reading the disk for a while.
		s.stats.ReadErrors.Add(1)
		s.noteFault("read", err)
		return 0, 0, false
	}
	s.dropIfUnchanged(k, e, err)
	return 0, 0, false
}

// Drop removes page k, if cached: the caller found it wrong (for example a
// length that disagrees with the object's size). It counts as corrupt.
func (s *Store) Drop(k Key) {
	s.mu.Lock()
	v, ok := s.mu.idx.remove(k)
	s.mu.Unlock()
	if !ok {
		return
	}
	s.stats.Corrupt.Add(1)
	s.log.Warn("dropping cached page", "file", k.File.String(), "page", k.Page, "slot", v.slot)
	s.release([]victim{v})
}

// dropIfUnchanged removes page k after a failed read, unless the index moved
// on meanwhile (the page was evicted or replaced while we read it: a race,
// not corruption).
func (s *Store) dropIfUnchanged(k Key, seen entry, readErr error) {
	s.mu.Lock()
	cur, ok := s.mu.idx.peek(k)
	if !ok || cur.slot != seen.slot || cur.crc != seen.crc {
		s.mu.Unlock()
		return
	}
	v, _ := s.mu.idx.remove(k)
	s.mu.Unlock()
	s.stats.Corrupt.Add(1)
	s.log.Warn("dropping corrupt cached page", "file", k.File.String(),
		"page", k.Page, "slot", seen.slot, "read_error", readErr)
	s.release([]victim{v})
}

// Put stores data as page k. It is a no-op if k is already cached. Pages
// larger than PageSize and empty pages are refused.
//
// While the disk is faulted (see Health) Put stores nothing and returns
// ErrDegraded at once, except for one Put every FaultRetry that tries the
// disk again; a write that succeeds ends the fault.
func (s *Store) Put(k Key, data []byte) error {
	return s.put(k, data, pageChecksum(k, data))
}

// PutSum is Put of a page whose checksum (Checksum of k and data) was taken
// when its bytes arrived: a page whose bytes no longer match it changed in
// memory since, and is refused.
func (s *Store) PutSum(k Key, data []byte, sum uint32) error {
	if got := pageChecksum(k, data); got != sum {
		return fmt.Errorf("put page %d of %s: %w: checksum %08x, %08x when it was fetched", k.Page, k.File, ErrChecksum, got, sum)
	}
	return s.put(k, data, sum)
}

// ErrChecksum says that a page's bytes do not match its checksum.
var ErrChecksum = errors.New("page checksum mismatch")

func (s *Store) put(k Key, data []byte, sum uint32) error {
	if len(data) == 0 || len(data) > s.pageSize {
		return fmt.Errorf("put page of %d bytes: must be 1 to %d bytes", len(data), s.pageSize)
	}
	s.mu.Lock()
	skip := s.skipDiskLocked(false, time.Now())
	s.mu.Unlock()
	if skip {
		s.stats.Bypassed.Add(1)
		return ErrDegraded
	}
	need := s.mu.idx.diskBytes(uint32(len(data))) // blockSize is immutable
	slot, ok, err := s.reserve(k, need)
	if err != nil || !ok {
		return err
	}
	r := record{key: k, length: uint32(len(data)), crc: sum}
	if err := s.slabs.write(slot, data, r); err != nil {
		s.stats.WriteErrors.Add(1)
		s.noteFault("write", err)
		v := []victim{{slot: slot, bytes: need}}
		if faultOf(err) == FaultFull {
			s.release(v) // a partial write may hold blocks: punch them out
		} else {
			// Nothing reached a read-only or dead disk, and clearing the
			// slot's record would fail the same way: only the index
			// forgets the slot.
			s.mu.Lock()
			s.mu.idx.releaseSlots(v)
			s.signalWritten()
			s.mu.Unlock()
		}
		return fmt.Errorf("%w: %w", ErrDegraded, err)
	}
	s.noteWritten()
	s.mu.Lock()
	if _, dup := s.mu.idx.peek(k); dup {
		s.mu.Unlock()
		s.release([]victim{{slot: slot, bytes: need}})
		return nil
	}
	s.mu.idx.insert(k, slot, r.length, r.crc)
	s.signalWritten()
	s.mu.Unlock()
	s.stats.Puts.Add(1)
	return nil
}

// reserve finds a slot and need bytes for k, evicting as needed. ok is false
// if k is already cached.
func (s *Store) reserve(k Key, need int64) (slot uint32, ok bool, err error) {
	var victims []victim
	var deadline *time.Timer
	defer func() {
		if deadline != nil {
			deadline.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if _, dup := s.mu.idx.peek(k); dup {
			s.mu.Unlock()
			return 0, false, nil
		}
		if slot, ok := s.mu.idx.reserve(need); ok {
			s.mu.Unlock()
			return slot, true, nil
		}
		if need > s.mu.idx.budget {
			s.mu.Unlock()
			return 0, false, fmt.Errorf("put page of %d bytes: larger than the cache budget", need)
		}
		victims = s.mu.idx.evictFor(need, victims[:0])
		if len(victims) == 0 {
			// Everything is reserved by writes in flight: wait until one
			// of them completes and try again.
			if s.mu.written == nil {
				s.mu.written = make(chan struct{})
			}
			written := s.mu.written
			s.mu.Unlock()
			if deadline == nil {
				deadline = time.NewTimer(fullWait)
			}
			select {
			case <-written:
				continue
			case <-deadline.C:
				return 0, false, fmt.Errorf("put page: cache full of writes in flight for %v", fullWait)
			}
		}
		s.mu.Unlock()
		s.stats.Evictions.Add(int64(len(victims)))
		s.release(victims)
	}
}

// release punches victims out and returns their slots and bytes. A slot that
// cannot be punched stays counted as used, so the disk bound holds.
func (s *Store) release(victims []victim) {
	freed := victims[:0]
	for _, v := range victims {
		if err := s.slabs.free(v.slot); err != nil {
			s.log.Error("cannot free cache slot; its space stays reserved", "slot", v.slot, "error", err)
			continue
		}
		freed = append(freed, v)
	}
	s.mu.Lock()
	s.mu.idx.releaseSlots(freed)
	s.signalWritten()
	s.mu.Unlock()
}

// signalWritten wakes the Puts waiting for a write in flight to complete.
// The caller holds s.mu.
func (s *Store) signalWritten() {
	if s.mu.written != nil {
		close(s.mu.written)
		s.mu.written = nil
	}
}

// Close closes the store's files. Pages stay on disk for the next Open.
func (s *Store) Close() error {
	err := s.slabs.close()
	s.lock.Close() // releases the flock
	return err
}

// lockDir takes an exclusive lock on dir, so that two processes never run
// two indexes over the same slab files.
func lockDir(dir string) (*os.File, error) {
	name := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock cache dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(name)
		f.Close()
		return nil, fmt.Errorf("cache dir %s is in use by another process%s: give each process its own --cache-dir, or share one cache through a cluster (--etcd)",
			dir, pidNote(holder))
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

func pidNote(b []byte) string {
	if pid := strings.TrimSpace(string(b)); pid != "" {
		return " (pid " + pid + ")"
	}
	return ""
}
