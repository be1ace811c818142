package fuseview

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/internal/metrics"
)

// metaCache caches what the tree knows of the bucket: whole directory
// listings, and single lookups (a file, a directory, or "missing"), each with
// an expiry. It makes no FUSE calls and can be tested on its own.
//
// Invariants:
//   - an item past its expiry is never used; it is dropped when met;
//   - the weight of the cache (the entries of each cached listing, 1 for each
//     single lookup or "too big" marker) never exceeds max: adding an item
//     evicts the least recently used ones first;
//   - a cached listing is complete, sorted by name and deduplicated, and is
//     never modified once published (readers share it without a lock);
//   - at most one fetch of a directory's listing runs at a time; callers wait
//     for it with their own context, and it runs with the cache's context, so
//     one caller giving up does not fail the others.
type metaCache struct {
	bucket    ufs.UFS
	ttl       time.Duration // < 0: nothing is cached
	negTTL    time.Duration // < 0: missing names are not cached
	pageSize  int
	max       int
	opTimeout time.Duration
	now       func() time.Time
	stats     *Stats
	odd       oddLog
	disk      *listingStore // nil: listings are kept in memory only

	ctx    context.Context // background fetches; cancelled by close
	cancel context.CancelFunc
	// bg counts the background goroutines (fetches, the walk-ahead
	// workers); close waits for them, so nothing writes to ListingDir
	// after it returns. Started only under mu while !mu.closed.
	bg sync.WaitGroup

	// ahead queues subdirectories whose listings are fetched before anyone
	// asks: a directory being read is usually being walked (ls -lR, find,
	// os.walk), and its children's listings cost a LIST round trip each.
	ahead     chan string
	aheadOnce sync.Once

	mu struct {
		sync.Mutex
		items   map[itemKey]*list.Element // values are *item
		lru     list.List                 // most recently used first
		weight  int
		flights map[string]*flight // listings being fetched, by directory
		closed  bool               // set by close: no background work starts
	}
}

type itemKey struct {
	listing bool
	key     string // the directory (prefix) of a listing, the key of a lookup
}

type item struct {
	k       itemKey
	weight  int
	expires time.Time
	l       *listing // listings (a "too big" marker is an incomplete listing)
	de      dentry   // lookups
	found   bool     // lookups: whether the name exists
}

// listing is the content of one directory.
type listing struct {
	// entries are sorted by name and unique when complete; otherwise they
	// are the first pages of a directory too large to cache, in key order.
	entries  []dentry
	complete bool
	after    string // if !complete: list on after this key ("" is the start)
	newest   time.Time
	fetched  time.Time // when the fetch began
	expires  time.Time
}

// find returns the entry called name.
func (l *listing) find(name string) (dentry, bool) {
	i, ok := slices.BinarySearchFunc(l.entries, name, func(e dentry, n string) int { return cmp.Compare(e.name, n) })
	if !ok {
		return dentry{}, false
	}
	return l.entries[i], true
}

type flight struct {
	done  chan struct{}
	l     *listing
	err   error
	stale bool // invalidated while running: do not cache the result (guarded by metaCache.mu)
}

// errNotFound is what lookups of missing names return.
var errNotFound = fmt.Errorf("fuseview: %w", ufs.ErrNotFound)

// Stats counts what a tree did. Plain atomic counters and latency
// histograms, read by metrics collectors at scrape time.
type Stats struct {
	Lookups   atomic.Int64 // name lookups (the kernel's, and re-stats of files whose metadata expired)
	Heads     atomic.Int64 // HEAD (Stat) requests to the bucket
	ListPages atomic.Int64 // LIST requests to the bucket
	// StoredListings counts listings read back from Options.ListingDir.
	StoredListings atomic.Int64
	Opens          atomic.Int64
	Flushes        atomic.Int64 // FLUSH requests (closes) that reached hoard: one per mount, then the kernel stops
	Reads          atomic.Int64 // read requests from the kernel
	ReadBytes      atomic.Int64
	Errors         atomic.Int64 // operations that failed with EIO

	// CacheHits are lookups and listings the metadata cache answered;
	// CacheMisses those that asked the bucket (or waited for a listing
	// being fetched).
	CacheHits, CacheMisses atomic.Int64
	// ErrorsByKind counts failed operations by kind (ErrorKind).
	ErrorsByKind [NumErrorKinds]atomic.Int64
	// Latency times the operations by Op.
	Latency [NumOps]metrics.Latency
}

// Op is a timed FUSE operation.
type Op int

// Timed operations. OpReaddir is the loading of a listing (or of its next
// page, for a directory too large to cache), not each entry.
const (
	OpLookup Op = iota
	OpReaddir
	OpOpen
	OpRead
	NumOps
)

func (o Op) String() string {
	return [...]string{metrics.FuseLookup, metrics.FuseReaddir, metrics.FuseOpen, metrics.FuseRead}[o]
}

// ErrorKind is why an operation failed.
type ErrorKind int

// Error kinds.
const (
	ErrAccessDenied ErrorKind = iota // EACCES
	ErrTimeout                       // EIO: OpTimeout passed
	ErrInterrupted                   // EINTR: the caller gave up
	ErrChanged                       // EIO: the object changed while open
	ErrIO                            // EIO: anything else (logged)
	NumErrorKinds
)

func (k ErrorKind) String() string {
	return [...]string{"access_denied", "timeout", "interrupted", "changed", "io"}[k]
}

func newMetaCache(bucket ufs.UFS, opt Options, stats *Stats) *metaCache {
	c := &metaCache{
		bucket:    bucket,
		ttl:       opt.MetadataTTL,
		negTTL:    opt.NegativeTTL,
		pageSize:  opt.ListPageSize,
		max:       opt.MaxCachedEntries,
		opTimeout: opt.OpTimeout,
		now:       time.Now,
		stats:     stats,
		odd:       oddLog{log: opt.Logger},
	}
	if c.ttl < 0 {
		c.negTTL = -1
	}
	if opt.ListingDir != "" && c.ttl > 0 {
		d, err := openListingStore(opt.ListingDir, opt.ListingScope, bucket.Source().String(), c.ttl, opt.ListingBytes, c.max, opt.Logger)
		if err != nil {
			opt.Logger.Warn("fuseview: listings are kept in memory only", "error", err)
		}
		c.disk = d
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.items = make(map[itemKey]*list.Element)
	c.mu.flights = make(map[string]*flight)
	return c
}

// close stops background fetches and waits for them to return.
func (c *metaCache) close() {
	c.mu.Lock()
	c.mu.closed = true
	c.mu.Unlock()
	c.cancel()
	c.bg.Wait()
}

// lookup resolves name in the directory dir ("" or a prefix ending in "/").
// It returns the entry and until when the answer holds, or errNotFound (with
// until when that holds), or the bucket's error.
func (c *metaCache) lookup(ctx context.Context, dir, name string) (dentry, time.Time, error) {
	c.stats.Lookups.Add(1)
	now := c.now()
	if !representable(name) || len(dir)+len(name)+1 > maxKeyLen {
		return dentry{}, c.expiry(now, c.negTTL), errNotFound
	}
	l := c.cachedListing(dir, now)
	if l != nil && l.complete {
		if de, ok := l.find(name); ok {
			c.stats.CacheHits.Add(1)
			return de, l.expires, nil
		}
		if negExp := l.fetched.Add(c.negTTL); c.negTTL >= 0 && now.Before(negExp) {
			c.stats.CacheHits.Add(1)
			return dentry{}, minTime(negExp, l.expires), errNotFound
		}
	}
	key := dir + name
	if it, ok := c.cachedLookup(key, now); ok {
		c.stats.CacheHits.Add(1)
		if !it.found {
			return dentry{}, it.expires, errNotFound
		}
		return it.de, it.expires, nil
	}
	c.stats.CacheMisses.Add(1)
	de, found, err := c.probe(ctx, key, name)
	if err != nil {
		return dentry{}, time.Time{}, err
	}
	exp := c.storeLookup(key, de, found, now)
	if l == nil {
		c.prefetch(dir)
	}
	if !found {
		return dentry{}, exp, errNotFound
	}
	return de, exp, nil
}

// probe asks the bucket about one name: a HEAD of the key and, at the same
// time, a LIST of one key under key+"/" (a directory wins over a file).
func (c *metaCache) probe(ctx context.Context, key, name string) (dentry, bool, error) {
	var (
		head             ufs.Object
		page             ufs.ListPage
		headErr, listErr error
		wg               sync.WaitGroup
	)
	wg.Go(func() {
		c.stats.Heads.Add(1)
		head, headErr = c.bucket.Stat(ctx, key)
	})
	wg.Go(func() {
		c.stats.ListPages.Add(1)
		page, listErr = c.bucket.List(ctx, ufs.ListOptions{Prefix: key + "/", Delimiter: "/", MaxKeys: 1})
	})
	wg.Wait()
	if listErr != nil {
		return dentry{}, false, listErr
	}
	if len(page.Objects) > 0 || len(page.Prefixes) > 0 {
		if headErr == nil {
			c.odd.note(key, "object hidden by a directory of the same name")
		}
		return dentry{name: name, dir: true}, true, nil
	}
	switch {
	case headErr == nil:
		return fileEntry(name, head), true, nil
	case errors.Is(headErr, ufs.ErrNotFound):
		return dentry{}, false, nil
	default:
		return dentry{}, false, headErr
	}
}

// listDir returns the listing of dir: the cached one if fresh, else a fetch
// (joined if one runs). For a directory too large to cache, the listing is
// incomplete and the caller lists on from its after key.
func (c *metaCache) listDir(ctx context.Context, dir string) (*listing, error) {
	now := c.now()
	if l := c.cachedListing(dir, now); l != nil {
		if l.complete {
			c.stats.CacheHits.Add(1)
			return l, nil
		}
		// Known to be too big: stream it from the start.
		c.stats.CacheMisses.Add(1)
		return &listing{fetched: now, expires: c.expiry(now, c.ttl)}, nil
	}
	c.stats.CacheMisses.Add(1)
	f := c.startFetch(dir)
	select {
	case <-f.done:
		return f.l, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Walk-ahead bounds: listings fetched at once in the background, and
// subdirectories queued per directory read.
const (
	aheadWorkers  = 8
	aheadPerDir   = 256
	aheadQueueLen = 1024
)

// prefetchChildren queues the listings of up to aheadPerDir subdirectories
// of a directory that is being read, to be fetched aheadWorkers at a time.
// Listings cached or in flight are skipped; a full queue drops the rest. It
// never recurses on its own: the next level is queued when the walk reads
// one of these directories.
func (c *metaCache) prefetchChildren(dir string, l *listing) {
	if c.ttl < 0 || !l.complete {
		return
	}
	c.aheadOnce.Do(func() {
		c.ahead = make(chan string, aheadQueueLen)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.mu.closed {
			return
		}
		for range aheadWorkers {
			c.bg.Go(c.walkAhead)
		}
	})
	queued := 0
	now := c.now()
	for _, e := range l.entries {
		if !e.dir || queued == aheadPerDir {
			continue
		}
		child := dir + e.name + "/"
		if c.memListing(child, now) != nil {
			continue // (one kept on disk is loaded by walkAhead)
		}
		select {
		case c.ahead <- child:
			queued++
		default:
			return
		}
	}
}

// walkAhead fetches queued listings until the cache is closed.
func (c *metaCache) walkAhead() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case dir := <-c.ahead:
			if c.cachedListing(dir, c.now()) != nil {
				continue
			}
			f := c.startFetch(dir)
			select {
			case <-f.done:
			case <-c.ctx.Done():
				return
			}
		}
	}
}

// prefetch starts fetching the listing of dir in the background, unless it
// is being fetched already or nothing is cached anyway.
func (c *metaCache) prefetch(dir string) {
	if c.ttl >= 0 {
		c.startFetch(dir)
	}
}

// startFetch returns the running fetch of dir's listing, starting one if
// there is none.
func (c *metaCache) startFetch(dir string) *flight {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.mu.flights[dir]; ok {
		return f
	}
	f := &flight{done: make(chan struct{})}
	if c.mu.closed {
		f.err = fmt.Errorf("listing %q: %w", dir, context.Canceled)
		close(f.done)
		return f
	}
	c.mu.flights[dir] = f
	c.bg.Go(func() {
		f.l, f.err = c.fetch(dir)
		c.mu.Lock()
		delete(c.mu.flights, dir)
		keep := f.err == nil && !f.stale
		if keep {
			c.storeListing(dir, f.l)
		}
		c.mu.Unlock()
		close(f.done)
		if keep && c.disk != nil && f.l.complete && len(f.l.entries) <= c.max {
			c.disk.save(dir, f.l)
		}
	})
	return f
}

// fetch lists dir page by page. It stops early, with an incomplete listing,
// when the directory has more entries than the cache may hold.
func (c *metaCache) fetch(dir string) (*listing, error) {
	l := &listing{fetched: c.now()}
	l.expires = c.expiry(l.fetched, c.ttl)
	p := &pager{c: c, dir: dir}
	for !p.done {
		ctx, cancel := context.WithTimeout(c.ctx, c.opTimeout)
		var err error
		l.entries, err = p.next(ctx, l.entries)
		cancel()
		if err != nil {
			return nil, err
		}
		if !p.done && len(l.entries) > c.max {
			l.after = p.after
			return l, nil
		}
	}
	l.entries = c.finish(dir, l.entries)
	l.complete = true
	for _, e := range l.entries {
		if e.mtime.After(l.newest) {
			l.newest = e.mtime
		}
	}
	return l, nil
}

// pager lists a directory one page at a time.
type pager struct {
	c     *metaCache
	dir   string
	after string // StartAfter of the next page
	done  bool
}

// next appends the next page's entries to dst.
func (p *pager) next(ctx context.Context, dst []dentry) ([]dentry, error) {
	p.c.stats.ListPages.Add(1)
	page, err := p.c.bucket.List(ctx, ufs.ListOptions{Prefix: p.dir, Delimiter: "/", StartAfter: p.after, MaxKeys: p.c.pageSize})
	if err != nil {
		return dst, err
	}
	p.after, p.done = page.Next, page.Next == ""
	return p.c.pageEntries(dst, p.dir, page), nil
}

// dirTime returns the newest modification time in dir's cached listing.
func (c *metaCache) dirTime(dir string) (time.Time, bool) {
	l := c.cachedListing(dir, c.now())
	if l == nil || !l.complete || l.newest.IsZero() {
		return time.Time{}, false
	}
	return l.newest, true
}

// invalidate forgets what is known of dir+name and of dir's listing,
// including a listing being fetched now.
func (c *metaCache) invalidate(dir, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(itemKey{key: dir + name})
	c.removeLocked(itemKey{listing: true, key: dir})
	if f, ok := c.mu.flights[dir]; ok {
		f.stale = true
	}
	if c.disk != nil {
		c.disk.remove(dir)
	}
}

// expiry is now+ttl, or now for a negative ttl (not cached).
func (c *metaCache) expiry(now time.Time, ttl time.Duration) time.Time {
	if ttl < 0 {
		return now
	}
	return now.Add(ttl)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// cachedListing returns dir's fresh listing or "too big" marker, or nil:
// from memory, else from the listings kept on disk by an earlier mount.
func (c *metaCache) cachedListing(dir string, now time.Time) *listing {
	if l := c.memListing(dir, now); l != nil || c.disk == nil {
		return l
	}
	l := c.disk.load(dir, now, c.ttl)
	if l == nil {
		return nil
	}
	c.stats.StoredListings.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, running := c.mu.flights[dir]; !running {
		c.storeListing(dir, l)
	}
	return l
}

// memListing is cachedListing without the disk.
func (c *metaCache) memListing(dir string, now time.Time) *listing {
	it := c.get(itemKey{listing: true, key: dir}, now)
	if it == nil {
		return nil
	}
	return it.l
}

// cachedLookup returns the fresh result of an earlier probe of key.
func (c *metaCache) cachedLookup(key string, now time.Time) (item, bool) {
	it := c.get(itemKey{key: key}, now)
	if it == nil {
		return item{}, false
	}
	return *it, true
}

// storeLookup caches a probe's result and returns until when it holds.
func (c *metaCache) storeLookup(key string, de dentry, found bool, now time.Time) time.Time {
	ttl := c.ttl
	if !found {
		ttl = c.negTTL
	}
	exp := c.expiry(now, ttl)
	if ttl >= 0 {
		c.mu.Lock()
		c.putLocked(&item{k: itemKey{key: key}, weight: 1, expires: exp, de: de, found: found})
		c.mu.Unlock()
	}
	return exp
}

// storeListing caches l, or just a "too big" marker if l is incomplete or
// would not fit. The caller holds c.mu.
func (c *metaCache) storeListing(dir string, l *listing) {
	if c.ttl < 0 {
		return
	}
	k := itemKey{listing: true, key: dir}
	if !l.complete || len(l.entries) > c.max {
		c.putLocked(&item{k: k, weight: 1, expires: l.expires, l: &listing{fetched: l.fetched, expires: l.expires}})
		return
	}
	c.putLocked(&item{k: k, weight: max(1, len(l.entries)), expires: l.expires, l: l})
}

func (c *metaCache) get(k itemKey, now time.Time) *item {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.mu.items[k]
	if !ok {
		return nil
	}
	it := e.Value.(*item)
	if !now.Before(it.expires) {
		c.removeLocked(k)
		return nil
	}
	c.mu.lru.MoveToFront(e)
	return it
}

func (c *metaCache) putLocked(it *item) {
	c.removeLocked(it.k)
	c.mu.items[it.k] = c.mu.lru.PushFront(it)
	c.mu.weight += it.weight
	for c.mu.weight > c.max {
		c.removeLocked(c.mu.lru.Back().Value.(*item).k)
	}
}

func (c *metaCache) removeLocked(k itemKey) {
	e, ok := c.mu.items[k]
	if !ok {
		return
	}
	c.mu.lru.Remove(e)
	delete(c.mu.items, k)
	c.mu.weight -= e.Value.(*item).weight
}

// size returns the number of items and their weight (for tests).
func (c *metaCache) size() (items, weight int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mu.items), c.mu.weight
}
