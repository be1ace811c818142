package worker

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"hoard.dev/hoard/cachecore/flight"
	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/stall"
	"hoard.dev/hoard/cachecore/ufs"
)

// Sources gives the bucket behind a source name (ufs.UFS.Source()).
type Sources interface {
	// Open opens source with the worker's own identity.
	Open(ctx context.Context, source objid.Source) (ufs.UFS, error)
	// OpenAs opens source with a tenant's credentials.
	OpenAs(ctx context.Context, source objid.Source, creds ufs.Credentials) (ufs.UFS, error)
}

// Request asks for bytes [Off, Off+Len) of one version of one object.
type Request struct {
	Source  objid.Source // the bucket, as ufs.UFS.Source() names it
	Key     string
	Version string
	Size    int64 // the object's size, which bounds its last page
	Off     int64
	Len     int64
	// Creds, if set, are the tenant's: the worker serves the range only
	// after the store confirmed they may read the object (authorize) and
	// fetches misses with them. Never in Query; they travel in headers.
	Creds *ufs.Credentials
	// Blocks asks for the range in blocks (see BlockBytes) rather than
	// pages: on a miss only its blocks are fetched and cached. The range
	// must start and end on blocks, and the destination take whole units
	// with their checksums (SumTaker).
	Blocks bool
}

// ID is the identity of the requested object.
func (r Request) ID() objid.ID { return objid.Of(r.Source, r.Key, r.Version, r.Size) }

// Bounds of a request. A request names the object's size, but the worker
// believes it only once the store confirmed it (Content-Range or HEAD).
const (
	// MaxRequestBytes is the longest range one request may ask for: one
	// 64 MiB chunk, so one request claims at most 64 pages of 1 MiB.
	MaxRequestBytes = 64 << 20
	// MaxObjectSize is S3's largest object (5 TiB); it keeps page numbers
	// within 32 bits for any page size of 4 KiB or more.
	MaxObjectSize = 5 << 40
	// MaxKeyBytes is S3's longest key; MaxVersionBytes is far beyond any
	// ETag or file version.
	MaxKeyBytes     = 1024
	MaxVersionBytes = 256
)

// Validate reports a malformed request.
func (r Request) Validate() error {
	switch {
	case r.Source.Validate() != nil:
		return fmt.Errorf("source: %w", r.Source.Validate())
	case r.Key == "" || len(r.Key) > MaxKeyBytes:
		return fmt.Errorf("key: want 1 to %d bytes, got %d", MaxKeyBytes, len(r.Key))
	case r.Version == "" || len(r.Version) > MaxVersionBytes:
		return fmt.Errorf("version: want 1 to %d bytes, got %d", MaxVersionBytes, len(r.Version))
	case r.Size < 0 || r.Off < 0 || r.Len < 0:
		return fmt.Errorf("negative size, offset or length (%d, %d, %d)", r.Size, r.Off, r.Len)
	case r.Size > MaxObjectSize:
		return fmt.Errorf("size %d is larger than the largest object (%d)", r.Size, int64(MaxObjectSize))
	case r.Len > MaxRequestBytes:
		return fmt.Errorf("length %d is more than one request may ask (%d)", r.Len, MaxRequestBytes)
	case r.Off > r.Size || r.Len > r.Size-r.Off: // no overflow: both are within [0, Size]
		return fmt.Errorf("range at %d of %d bytes is past the object's size %d", r.Off, r.Len, r.Size)
	}
	return nil
}

// pageLen is the length page p of the object must have.
func (r Request) pageLen(p uint32, pageSize int64) int64 {
	return min(pageSize, r.Size-int64(p)*pageSize)
}

// Config configures a worker.
type Config struct {
	ID      string
	Store   *pagestore.Store
	Sources Sources
	// FetchBytes is the size of one ranged GET on a miss (default 16 MiB,
	// a client's request);
	// a large miss is fetched as several such GETs in parallel.
	FetchBytes int64
	// MaxFetches bounds the GETs in flight to the bucket (default 32).
	MaxFetches int
	// FetchTimeout bounds one GET, whoever waits for it (default
	// DefaultFetchTimeout).
	FetchTimeout time.Duration
	// FetchStall bounds how long a GET may go without a byte from the
	// bucket, before its first and between any two (default
	// DefaultFetchStall): a hung store fails its readers then
	// (ufs.ErrStalled), not at FetchTimeout.
	FetchStall time.Duration
	// AuthTTL is how long a store's confirmation that a tenant may read an
	// object is trusted (default DefaultAuthTTL).
	AuthTTL time.Duration
	// AuthGrace is how long after AuthTTL a confirmation still counts
	// while the store cannot answer (0: DefaultAuthGrace; negative: none).
	AuthGrace time.Duration
	// GraceHeadTimeout bounds the HEAD that re-confirms a reader whose
	// earlier yes is within its grace (default 5s): a store that hangs
	// counts as one that cannot answer, and the reader goes on reading its
	// cached pages rather than waiting out the transport's timeouts.
	GraceHeadTimeout time.Duration
	// AuthorizeOwn has requests without credentials authorized as those
	// with them are: before any byte of an object, cached or not, a HEAD
	// with the worker's own identity (cached per object for AuthTTL). For
	// a worker whose own identity is one tenant among others sharing its
	// store: the mounter's embedded worker, where a request without
	// credentials is a volume's without a Secret, read with the node's
	// ambient identity. Without it, the operator's allowing a source for
	// the worker's own identity (sources.Policy.Own) is all it takes.
	AuthorizeOwn bool
	// VerifyStoreChecksum checks, when a fetch reads a whole object in one
	// GET (an object of at most FetchBytes), its bytes against the store's
	// own checksum: the ETag, where it is the MD5 of the object (single-part
	// uploads without SSE-KMS). Pages of an object that fails are served
	// to nobody and cached nowhere. The pages are handed out when the
	// whole object has arrived, not one by one.
	VerifyStoreChecksum bool
	// WriteBacklogBytes bounds the fetched bytes waiting for the page
	// store's disk (default 8 x FetchBytes); past it a fetch waits for the
	// disk before it reads its next page from the bucket.
	WriteBacklogBytes int64
	Logger            *slog.Logger
}

// Stats counts what a worker did.
type Stats struct {
	Requests, BytesServed, PageHits, PageMisses atomic.Int64
	Fetches, FetchedBytes, FetchErrors          atomic.Int64
	Lists, ListHits, ListErrors                 atomic.Int64 // listing pages from the bucket / the cache / failed
	AuthChecks                                  atomic.Int64 // HEADs with a tenant's credentials
	// AuthGraced counts requests let through on an earlier confirmation
	// because the store could not answer (AuthGrace).
	AuthGraced atomic.Int64
	// AuthByFetch counts readers confirmed by their own GET of a cold
	// object's first page rather than a HEAD (see authorizeRead).
	AuthByFetch atomic.Int64
	// StoreChecks counts objects checked against the store's checksum
	// (VerifyStoreChecksum), StoreChecksumErrors those that failed.
	StoreChecks, StoreChecksumErrors atomic.Int64
	// FetchRefused counts the GETs the bucket refused, by Refusal: its
	// answer to the reader's credentials or object, not a failure of the
	// bucket (FetchErrors).
	FetchRefused [NumRefusals]atomic.Int64
	// RefusalRetries counts pages fetched again with a reader's own
	// credentials after a fetch it joined, started for another reader,
	// was refused (see unit).
	RefusalRetries atomic.Int64
}

// Refusal is why a bucket refused a GET.
type Refusal int

// Refusals.
const (
	RefusedDenied   Refusal = iota // access denied: the reader's credentials do not allow it
	RefusedNotFound                // no such object (deleted since it was listed)
	RefusedChanged                 // the object changed since it was opened
	NumRefusals
)

func (r Refusal) String() string { return [...]string{"denied", "not_found", "changed"}[r] }

// refusalOf says whether err is a bucket's refusal, and which.
func refusalOf(err error) (Refusal, bool) {
	switch {
	case errors.Is(err, ufs.ErrAccessDenied):
		return RefusedDenied, true
	case errors.Is(err, ufs.ErrNotFound):
		return RefusedNotFound, true
	case errors.Is(err, ufs.ErrVersionMismatch):
		return RefusedChanged, true
	}
	return 0, false
}

// Worker serves pages of objects from its page store, fetching misses from the
// bucket once.
type Worker struct {
	id         string
	store      *pagestore.Store
	sources    Sources
	pageSize   int64
	fetchPages int
	timeout    time.Duration
	stall      time.Duration // Config.FetchStall
	checkOwn   bool
	graceHead  time.Duration
	// verifyStore: Config.VerifyStoreChecksum.
	verifyStore bool
	log         *slog.Logger

	flights flight.Group[pagestore.Key]
	lists   *listCache
	auth    *authCache
	sem     chan struct{}
	bufs    sync.Pool
	stats   Stats

	// writes queues fetched pages for the store. One writer keeps disk
	// writes off the path to the waiting clients and keeps pwrites to the
	// slab files from contending for their inode lock; backlog holds the
	// bytes queued to at most WriteBacklogBytes (see cache).
	writes  chan pending
	writing sync.WaitGroup
	backlog *semaphore.Weighted
	maxLog  int64

	// Fetches run detached from requests; Close cancels and waits for them.
	life     context.Context
	stop     context.CancelFunc
	fetching sync.WaitGroup
	mu       struct {
		sync.Mutex
		closed bool
	}
}

// ErrClosed is returned for reads that need a fetch after Close.
var ErrClosed = errors.New("worker closed")

// pending is a fetched page on its way into the store, with the checksum
// taken when it arrived.
type pending struct {
	key  pagestore.Key
	data []byte
	sum  uint32
}

// New returns a worker serving from cfg.Store.
func New(cfg Config) (*Worker, error) {
	if cfg.ID == "" || cfg.Store == nil || cfg.Sources == nil {
		return nil, errors.New("worker: ID, Store and Sources are required")
	}
	if cfg.FetchBytes <= 0 {
		cfg.FetchBytes = 16 << 20
	}
	if cfg.MaxFetches <= 0 {
		cfg.MaxFetches = 32
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.FetchStall <= 0 {
		cfg.FetchStall = DefaultFetchStall
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WriteBacklogBytes <= 0 {
		cfg.WriteBacklogBytes = 8 * cfg.FetchBytes
	}
	if cfg.GraceHeadTimeout <= 0 {
		cfg.GraceHeadTimeout = 5 * time.Second
	}
	if cfg.AuthTTL <= 0 {
		cfg.AuthTTL = DefaultAuthTTL
	}
	switch {
	case cfg.AuthGrace == 0:
		cfg.AuthGrace = DefaultAuthGrace
	case cfg.AuthGrace < 0:
		cfg.AuthGrace = 0 // none
	}
	ps := int64(cfg.Store.PageSize())
	w := &Worker{
		id:          cfg.ID,
		store:       cfg.Store,
		sources:     cfg.Sources,
		pageSize:    ps,
		fetchPages:  int(max(cfg.FetchBytes/ps, 1)),
		timeout:     cfg.FetchTimeout,
		stall:       cfg.FetchStall,
		checkOwn:    cfg.AuthorizeOwn,
		graceHead:   cfg.GraceHeadTimeout,
		verifyStore: cfg.VerifyStoreChecksum,
		log:         cfg.Logger.With("worker", cfg.ID),
		sem:         make(chan struct{}, cfg.MaxFetches),
		lists:       newListCache(10000, DefaultListCacheBytes),
		auth:        newAuthCache(cfg.AuthTTL, cfg.AuthGrace),
		backlog:     semaphore.NewWeighted(cfg.WriteBacklogBytes),
		maxLog:      cfg.WriteBacklogBytes,
	}
	w.bufs.New = func() any { b := cfg.Store.NewBuffer(); return &b }
	w.writes = make(chan pending, max(cfg.WriteBacklogBytes/minQueuedPage, 64))
	w.life, w.stop = context.WithCancel(context.Background())
	w.writing.Add(1)
	go w.writeBehind()
	return w, nil
}

// writeBehind stores fetched pages, then lets their flights go: until then a
// reader of the page gets the fetched bytes from the flight.
func (w *Worker) writeBehind() {
	defer w.writing.Done()
	for p := range w.writes {
		if err := w.store.PutSum(p.key, p.data, p.sum); err != nil && !errors.Is(err, pagestore.ErrDegraded) {
			// A failing disk is logged by the store, once.
			w.log.Warn("cannot cache page", "page", p.key.Page, "error", err)
		}
		w.flights.Forget(p.key)
		w.backlog.Release(w.queued(p))
	}
}

// minQueuedPage sizes the write queue: WriteBacklogBytes of pages this
// small fit in it.
const minQueuedPage = 16 << 10

// queued is what p counts against the backlog.
func (w *Worker) queued(p pending) int64 { return min(int64(len(p.data)), w.maxLog) }

// cache queues a fetched page, already delivered to its readers, for the
// store, once the backlog has room for its bytes: the backlog is bounded in
// bytes, not pages, so that a burst of small objects (a 100 KiB image each)
// queues as many bytes as one of large ones, where a bound of 128 pages
// held a cold epoch of small files at the disk's latency. If ctx ends
// first (the fetch timed out, the worker is closing), the page is served
// and not cached.
func (w *Worker) cache(ctx context.Context, p pending) {
	if err := w.backlog.Acquire(ctx, w.queued(p)); err != nil {
		w.flights.Forget(p.key)
		return
	}
	w.writes <- p
}

// Close stops fetches and waits for fetched pages to reach the store. Reads
// that need a fetch fail with ErrClosed afterwards.
func (w *Worker) Close() {
	w.mu.Lock()
	if w.mu.closed {
		w.mu.Unlock()
		return
	}
	w.mu.closed = true
	w.mu.Unlock()
	w.stop()
	w.fetching.Wait()
	close(w.writes)
	w.writing.Wait()
}

// ID is the worker's stable identity.
func (w *Worker) ID() string { return w.id }

// Stats returns the worker's counters.
func (w *Worker) Stats() *Stats { return &w.stats }

// Store returns the worker's page store.
func (w *Worker) Store() *pagestore.Store { return w.store }

// Read writes the requested bytes to out in order, as each page becomes
// available: cached pages from the store, missing ones as their fetch from the
// bucket delivers them. It returns an error of the bucket (ufs.ErrNotFound,
// ufs.ErrVersionMismatch, ...) or of out; bytes written before an error are
// correct.
func (w *Worker) Read(ctx context.Context, req Request, out io.Writer) error {
	if err := req.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	w.stats.Requests.Add(1)
	if req.Blocks {
		if err := w.validBlocks(req); err != nil {
			return fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
	}
	id := req.ID()
	ak := authKeyOf(req, id)
	byFetch, err := w.authorizeRead(ctx, req, ak, pagestore.Key{File: id, Page: uint32(req.Off / w.pageSize)})
	if err != nil {
		return err
	}
	if req.Blocks {
		summed, ok := out.(SumTaker)
		if !ok {
			return fmt.Errorf("%w: a read of blocks needs a destination that takes checksums", ErrBadRequest)
		}
		return w.readBlocks(ctx, req, id, summed)
	}
	end := req.Off + req.Len
	last := uint32(0)
	if end > 0 {
		last = uint32((end - 1) / w.pageSize)
	}
	bp := w.bufs.Get().(*[]byte)
	defer w.bufs.Put(bp)
	taker, _ := out.(PageTaker)
	summed, _ := out.(SumTaker)
	w.willNeed(id, uint32(req.Off/w.pageSize), last)
	for pos := req.Off; pos < end; {
		if err := ctx.Err(); err != nil {
			return err
		}
		page := uint32(pos / w.pageSize)
		start := int64(page) * w.pageSize
		k := pagestore.Key{File: id, Page: page}
		buf := *bp
		if n := min(w.pageSize, req.Size-start); taker != nil && pos == start && end-start >= n && w.store.Contains(k) {
			// A whole cached page for a taker: read it into a buffer the
			// taker keeps, rather than into ours and then copy it (an
			// object's short last page, a whole small file, into one of
			// its size).
			buf = w.store.NewBufferOf(int(n))
		}
		var data []byte
		var sum uint32
		if byFetch { // the first page, the request's credentials not yet confirmed
			byFetch = false
			data, sum, err = w.proven(ctx, req, ak, k, pagestore.Key{File: id, Page: last}, buf)
		} else {
			data, sum, err = w.unit(ctx, req, PagesOf(w.pageSize), k, pagestore.Key{File: id, Page: last}, buf)
		}
		if err != nil {
			return err
		}
		hi := min(int64(len(data)), end-start)
		whole := pos == start && hi == int64(len(data))
		owned := &data[0] != &(*bp)[0] // fetched, or read for the taker: nobody else modifies it
		switch {
		case summed != nil && whole:
			err = summed.TakeSummed(data, sum, owned)
		case taker != nil && whole && owned:
			err = taker.TakePage(data)
		default:
			_, err = out.Write(data[pos-start : hi])
		}
		if err != nil {
			return fmt.Errorf("send page: %w", err)
		}
		w.stats.BytesServed.Add(hi - (pos - start))
		pos = start + hi
	}
	return nil
}

// willNeed has the store start reading the cached pages of a request of
// more than one page from disk together, before Read sends them one by one.
func (w *Worker) willNeed(id objid.ID, first, last uint32) {
	if last <= first {
		return
	}
	keys := make([]pagestore.Key, 0, last-first+1)
	for p := first; p <= last; p++ {
		keys = append(keys, pagestore.Key{File: id, Page: p})
	}
	w.store.WillNeed(keys)
}

// PageTaker is a destination for Read that can keep a whole page's bytes
// without copying them. Read offers it the pages it fetched from the bucket
// and the whole pages it read from the store into a buffer of their own,
// which nobody else modifies; parts of pages are written (copied) as usual.
type PageTaker interface {
	TakePage(page []byte) error
}

// SumTaker is a destination for Read that takes whole pages with their
// checksum (pagestore.Checksum of the page's key and bytes, taken when the
// bytes arrived from the bucket and kept with them in the store), to check
// them where they are used. owned says the page was fetched and nobody
// modifies it: it may be kept without a copy. Parts of pages (a request
// that does not start or end on a page boundary) are written as usual.
type SumTaker interface {
	TakeSummed(page []byte, sum uint32, owned bool) error
}

// ErrBadRequest marks a malformed request.
var ErrBadRequest = errors.New("bad request")

// unit returns unit k (a page, or a block): from the store into buf, or from
// the fetch that brings it. On a miss it also starts fetches of every missing
// unit up to last, in runs of FetchBytes, so a large cold read runs several
// GETs in parallel. A unit whose length is not the one the object's size
// gives is refused (and dropped from the store): it is never served short.
//
// req's reader is confirmed (authorizeRead) before unit is called, but a
// fetch it joins may have been started by another reader, with other
// credentials: if the bucket refused that one (Refusal), k is fetched once
// more with req's own, so that a tenant without rights to an object cannot
// fail, or push out of the cache, another tenant's read of it.
func (w *Worker) unit(ctx context.Context, req Request, u Units, k, last pagestore.Key, buf []byte) ([]byte, uint32, error) {
	want := u.Len(k, req.Size)
	retried, dropped := false, false
	for {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		if n, sum, ok := w.store.GetSum(k, buf); ok {
			if int64(n) != want {
				// Not the page of this identity (the size is part of it):
				// dropped and fetched again, once.
				w.store.Drop(k)
				if dropped {
					return nil, 0, fmt.Errorf("cached page %d of %s/%s has %d bytes, want %d, again after a drop", k.Page, req.Source, req.Key, n, want)
				}
				dropped = true
				w.log.Warn("cached page of the wrong length dropped; fetching it again", "source", req.Source, "key", req.Key, "page", k.Page, "bytes", n, "want", want)
				continue
			}
			w.stats.PageHits.Add(1)
			return buf[:n], sum, nil
		}
		call, joined := w.flights.Join(k)
		if !joined {
			var mine bool
			call, mine = w.fetchFrom(req, u, k, last.Page)
			joined = !mine
		}
		if call == nil {
			continue // cached meanwhile
		}
		if !retried {
			w.stats.PageMisses.Add(1) // one miss per page, refetched or not
		}
		data, err := call.Wait(ctx)
		if _, refused := refusalOf(err); refused && joined && !retried && ctx.Err() == nil {
			retried = true
			w.stats.RefusalRetries.Add(1)
			continue
		}
		if err == nil && int64(len(data)) != want {
			err = fmt.Errorf("page %d of %s/%s has %d bytes, want %d", k.Page, req.Source, req.Key, len(data), want)
		}
		return data, call.Sum(), err
	}
}

// fetchFrom claims and starts fetches of the missing units from k to last
// and returns the call of unit k (nil if k was cached meanwhile); mine says
// this call's fetch of k was claimed here (not another request's).
func (w *Worker) fetchFrom(req Request, u Units, k pagestore.Key, last uint32) (call *flight.Call, mine bool) {
	run := max(int(int64(w.fetchPages)*w.pageSize/u.Size), 1)
	call = w.flights.ClaimRuns(k, last, run, 0, w.store.Contains, func(first pagestore.Key, n int) {
		if first == k {
			mine = true
		}
		if !w.startFetch() {
			for i := 0; i < n; i++ {
				w.flights.Finish(pagestore.Key{File: first.File, Page: first.Page + uint32(i)}, nil, ErrClosed)
			}
			return
		}
		if first == k && k.Page == last && n == 1 {
			// One unit, the caller's (a small file): fetched in the
			// caller's goroutine, which would only wait for it. Saves a
			// hand-off per cold small file; fetch still runs detached
			// from the caller's context.
			w.fetch(req, u, first, n)
			return
		}
		go w.fetch(req, u, first, n)
	})
	return call, mine
}

// startFetch counts a fetch about to start, unless the worker is closed.
func (w *Worker) startFetch() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mu.closed {
		return false
	}
	w.fetching.Add(1)
	return true
}

// fetch reads n units starting at first from the bucket in one ranged GET,
// storing each one and handing it to its waiters as soon as it is complete.
// It runs detached from any one reader: others may be waiting for its units.
func (w *Worker) fetch(req Request, u Units, first pagestore.Key, n int) {
	defer w.fetching.Done()
	ctx, cancel := context.WithTimeout(w.life, w.timeout)
	defer cancel()
	off := u.Off(first)
	length := min(int64(n)*u.Size, req.Size-off)
	select {
	case w.sem <- struct{}{}:
		defer func() { <-w.sem }()
	case <-ctx.Done():
		// Timed out (or closing) while queued behind other GETs: the
		// bound on GETs in flight holds, and nothing is fetched.
		err := fmt.Errorf("fetch %s/%s at %d: waiting for one of %d GETs to the bucket: %w", req.Source, req.Key, off, cap(w.sem), context.Cause(ctx))
		w.stats.FetchErrors.Add(1)
		w.log.Warn("fetch from bucket not started", "source", req.Source, "key", req.Key, "off", off, "len", length, "error", err)
		for i := 0; i < n; i++ {
			w.flights.Finish(pagestore.Key{File: first.File, Page: first.Page + uint32(i)}, nil, err)
		}
		return
	}
	w.stats.Fetches.Add(1)
	getCtx, watch, release := stall.WithContext(ctx, w.stall, fmt.Errorf("%w for %v", ufs.ErrStalled, w.stall))
	defer release()
	var body io.Reader
	rc, err := w.open(getCtx, req, off, length)
	if rc != nil {
		defer rc.Close()
		body = watch.Reader(rc)
	}
	err = watch.Err(err)
	if err == nil && w.verifyStore && off == 0 && length == req.Size && isMD5(req.Version) {
		w.fetchVerified(ctx, req, u, first, n, body)
		return
	}
	for i := 0; i < n; i++ {
		k := pagestore.Key{File: first.File, Page: first.Page + uint32(i)}
		if err != nil {
			w.flights.Finish(k, nil, err)
			continue
		}
		data := w.pageBuffer(u.Len(k, req.Size))
		if _, rerr := io.ReadFull(body, data); rerr != nil {
			err = fmt.Errorf("read %s/%s at %d: %w", req.Source, req.Key, u.Off(k), rerr)
			w.flights.Finish(k, nil, err)
			continue
		}
		w.stats.FetchedBytes.Add(int64(len(data)))
		// The checksum goes with the page from here on: into the store
		// and to every reader, who checks it.
		sum := pagestore.Checksum(k, data)
		w.flights.DeliverSum(k, data, sum)
		// A full write-behind queue is our disk's wait, not the bucket's.
		resume := watch.Pause()
		w.cache(ctx, pending{key: k, data: data, sum: sum})
		resume()
	}
	if err != nil {
		w.fetchFailed(req, off, length, err)
	}
}

// DefaultFetchStall is Config.FetchStall's default. It is shorter than a
// client's wait for a worker's answer (client.Config.Timeout, 30 s), so
// that a worker whose bucket hangs says so (502, the bucket as cause) before
// its clients give up on it: a client that timed out would take the worker
// for hung, suspect it, and send reads of pages it holds to workers that
// would ask the hung bucket for them (found by make faults, "bucket hung",
// when both were 30 s: cached reads failed).
const DefaultFetchStall = 20 * time.Second

// DefaultFetchTimeout is Config.FetchTimeout's default: a 64 MiB run at
// about 0.5 MiB/s.
const DefaultFetchTimeout = 2 * time.Minute

// fetchFailed counts and logs a GET that failed. A refusal (see Refusal)
// is counted apart and logged at debug level only: any tenant can cause
// one per read, and it says nothing about the bucket's health.
func (w *Worker) fetchFailed(req Request, off, length int64, err error) {
	if r, ok := refusalOf(err); ok {
		w.stats.FetchRefused[r].Add(1)
		w.log.Debug("the bucket refused a fetch", "source", req.Source, "key", req.Key, "off", off, "len", length, "refusal", r.String(), "error", err)
		return
	}
	w.stats.FetchErrors.Add(1)
	w.log.Warn("fetch from bucket failed", "source", req.Source, "key", req.Key, "off", off, "len", length, "error", err)
}

// ErrStoreChecksum says an object's bytes do not match the store's own
// checksum of them (VerifyStoreChecksum).
var ErrStoreChecksum = errors.New("bytes do not match the store's checksum (ETag MD5)")

// isMD5 reports whether an ETag is an MD5 (32 hex digits): a single-part
// upload's. Multipart ETags end in -N; SSE-KMS ones are not MD5s either,
// but look like one only on stores that encrypt, where this mode is off.
func isMD5(etag string) bool {
	if len(etag) != 2*md5.Size {
		return false
	}
	_, err := hex.DecodeString(etag)
	return err == nil
}

// fetchVerified reads the n units of a whole object from body, checks
// their MD5 against the ETag (req.Version), and only then hands them out
// and caches them; on a mismatch every waiter gets ErrStoreChecksum.
func (w *Worker) fetchVerified(ctx context.Context, req Request, u Units, first pagestore.Key, n int, body io.Reader) {
	h := md5.New()
	pages := make([][]byte, n)
	var err error
	for i := range pages {
		k := pagestore.Key{File: first.File, Page: first.Page + uint32(i)}
		pages[i] = w.pageBuffer(u.Len(k, req.Size))
		if _, rerr := io.ReadFull(body, pages[i]); rerr != nil {
			err = fmt.Errorf("read %s/%s at %d: %w", req.Source, req.Key, u.Off(k), rerr)
			break
		}
		h.Write(pages[i])
	}
	if err == nil {
		w.stats.StoreChecks.Add(1)
		if got := hex.EncodeToString(h.Sum(nil)); got != req.Version {
			w.stats.StoreChecksumErrors.Add(1)
			err = fmt.Errorf("read %s/%s: %w: MD5 %s, ETag %s", req.Source, req.Key, ErrStoreChecksum, got, req.Version)
		}
	}
	for i := range pages {
		k := pagestore.Key{File: first.File, Page: first.Page + uint32(i)}
		if err != nil {
			w.flights.Finish(k, nil, err)
			continue
		}
		w.stats.FetchedBytes.Add(int64(len(pages[i])))
		sum := pagestore.Checksum(k, pages[i])
		w.flights.DeliverSum(k, pages[i], sum)
		w.cache(ctx, pending{key: k, data: pages[i], sum: sum})
	}
	if err != nil {
		w.stats.FetchErrors.Add(1)
		w.log.Error("fetch from bucket failed", "source", req.Source, "key", req.Key, "error", err)
	}
}

// pageBuffer returns a buffer for a fetched page of n bytes: a full page
// gets an aligned one that the store writes without a copy; the last page
// of an object, often much smaller (a whole 100 KiB image), gets just its
// size, since clearing and collecting a page-sized buffer for it cost
// more than the store's copy (measured: a cold epoch of 100 KiB files
// spent a third of the mount's CPU in allocation and GC).
func (w *Worker) pageBuffer(n int64) []byte {
	if n == w.pageSize {
		return w.store.NewBuffer()
	}
	return make([]byte, n)
}

// open starts the ranged GET of a fetch, once the store confirmed the
// request's size: by the read itself (Content-Range, the file's size) or,
// for a backend that does not say, by a Stat. A size the store does not
// confirm is the object's version changing under the reader as far as the
// request is concerned: ErrVersionMismatch, nothing cached.
func (w *Worker) open(ctx context.Context, req Request, off, length int64) (io.ReadCloser, error) {
	u, err := w.bucket(ctx, req)
	if err != nil {
		return nil, err
	}
	body, err := u.ReadRange(ctx, req.Key, req.Version, off, length)
	if err != nil {
		return nil, err
	}
	size, ok := ufs.ObjectSize(body)
	if !ok {
		st, err := u.Stat(ctx, req.Key)
		if err != nil {
			body.Close()
			return nil, err
		}
		if st.Version != req.Version {
			body.Close()
			return nil, fmt.Errorf("read %s/%s: %w: store has version %s", req.Source, req.Key, ufs.ErrVersionMismatch, st.Version)
		}
		size = st.Size
	}
	if size != req.Size {
		body.Close()
		return nil, fmt.Errorf("read %s/%s: %w: the store says %d bytes, the request %d", req.Source, req.Key, ufs.ErrVersionMismatch, size, req.Size)
	}
	return body, nil
}
