package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/sys/unix"

	"hoard.dev/hoard/cachecore/flight"
	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/routing"
	"hoard.dev/hoard/cachecore/stall"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/cachecore/worker"
)

// Object is one version of one object to read.
type Object struct {
	Source  objid.Source // the bucket, as ufs.UFS.Source() names it
	Key     string
	Version string
	Size    int64
}

// ID is the object's identity in the cache.
func (o Object) ID() objid.ID { return objid.Of(o.Source, o.Key, o.Version, o.Size) }

// Members is the view of the cluster the client routes over.
type Members interface {
	Current() membership.View
	Changed() <-chan struct{}
}

// Sources gives the bucket behind a source name, for reads no worker serves.
type Sources interface {
	Open(ctx context.Context, source objid.Source) (ufs.UFS, error)
}

// Config configures a client. Members and Sources are required.
type Config struct {
	Members Members
	Sources Sources
	// Local is a worker in this process; reads it owns skip the network.
	Local *worker.Worker
	// ChunkSize is the routing unit (default 64 MiB), a multiple of PageSize.
	ChunkSize int64
	// PageSize must equal the workers' page size (default 1 MiB).
	PageSize int64
	// HotBytes bounds the in-memory hot tier (default 256 MiB; negative: none).
	HotBytes int64
	// HotBudget, if set, bounds this client's hot tier together with those
	// of the other clients given the same budget.
	HotBudget *HotBudget
	// ReadaheadBytes is the largest readahead window of a Reader (default 32 MiB).
	ReadaheadBytes int64
	// RequestBytes is the size of one request to a worker (default 16 MiB):
	// the worker fetches a cold request with one GET, and fewer, larger GETs
	// cost the bucket and the worker less CPU per byte (measured: 8 MiB ->
	// 16 MiB took 11% off a cold sequential read's CPU per GiB).
	RequestBytes int64
	// RandomBlocks has random reads of parts of pages fetch and cache 64 KiB
	// blocks (worker.BlockUnits) instead of whole pages. Off by default: on
	// this project's 2-core benchmark machine random 1 MiB ranges read
	// slower with blocks than with whole pages, cold (159 against 277 MiB/s,
	// 9.0 against 6.4 CPU-s/GiB) and warm (431 against 509 MiB/s), in one
	// run (docs/benchmarks.md). Kept for the profile that explains why.
	RandomBlocks bool
	// Timeout bounds the wait for a worker's first byte and any stall after
	// it (default 30 s): long enough for a cold fetch queued behind others at
	// a slow bucket, since giving up makes the next worker fetch the same
	// bytes again. A dead worker is noticed at once (connection refused) or
	// within the dial timeout (2 s).
	Timeout time.Duration
	// MaxAttempts is how many workers are tried before the bucket (default 3).
	MaxAttempts int
	// SuspectFor is how long a failed worker is skipped (default 10 s).
	SuspectFor time.Duration
	// LivenessGrace is how long a worker whose liveness lease lapsed is
	// still routed to as if alive (default 10 s), counted from when this
	// client saw the lease go or, for a registered worker it has never seen
	// alive, from when it first saw the worker: a client started during a
	// lapse routes as the clients that saw the worker alive do. A dead one
	// refuses the connection and becomes a suspect at once; a live one
	// whose lease flapped keeps its chunks.
	LivenessGrace time.Duration
	// BucketRetryFor is how long a read whose bucket throttles (503
	// SlowDown) is asked again, with backoff, before it fails (default
	// 30 s).
	BucketRetryFor time.Duration
	// BypassLogInterval is how often at most the client warns that reads
	// bypass the cache (default 1 min).
	BypassLogInterval time.Duration
	// Credentials, if set, are passed with every request to a worker, which
	// then serves cached bytes only after the store confirmed they may read
	// the object, and fetches misses with them. Without them workers read
	// with their own identity, where their operator allows it.
	Credentials *ufs.Credentials
	// DialTimeout bounds connecting to a worker (default 2 s; at most
	// Timeout): a dead worker refuses at once, an unreachable one is
	// skipped after it.
	DialTimeout time.Duration
	// TLS, if set, is used for every connection to a worker (https);
	// otherwise workers are reached over plain HTTP.
	TLS    *tls.Config
	HTTP   *http.Client
	Logger *slog.Logger
}

// Stats counts where the client's pages came from.
type Stats struct {
	HotHits, Joined, LocalReads, RemoteReads atomic.Int64
	Failovers, BucketReads, Errors           atomic.Int64
	// BadSums counts pages from workers whose checksum did not match their
	// bytes: dropped, and read from the next worker.
	BadSums       atomic.Int64
	BucketRetries atomic.Int64 // waits for a throttling bucket
	BytesRead     atomic.Int64
	SharedLists   atomic.Int64 // listing pages served by workers
	BypassedBytes atomic.Int64 // fetched from the bucket directly (BucketReads)
}

// Client reads objects through the cache cluster. It is safe for concurrent use.
type Client struct {
	cfg          Config
	pageSize     int64
	chunkPages   int
	requestPages int
	pages        worker.Units
	// blocks says random reads may fetch blocks rather than whole pages
	// (Config.RandomBlocks, and worker.BlocksFit of the page and chunk sizes).
	blocks   bool
	members  Members
	sources  Sources
	local    *worker.Worker
	http     *http.Client
	warmHTTP *http.Client // no first-byte timeout: a warm answers when done
	log      *slog.Logger

	hot     *hotTier
	flights flight.Group[pagestore.Key]
	stats   Stats
	bypass  bypassLog

	routes atomic.Pointer[routeTable]
	// suspects maps a worker ID to the time until which it is skipped.
	suspects sync.Map
	stop     chan struct{}
	done     chan struct{}

	// Fetches run detached from readers; Close cancels and waits for them.
	life      context.Context
	cancel    context.CancelFunc
	fetching  sync.WaitGroup
	closeOnce sync.Once
}

// routeTable is routing over one membership view.
type routeTable struct {
	table   *routing.Table
	members []membership.Member // by table index
	alive   []bool
	// lapsed is when a worker's lease was last seen to go, or when the
	// worker was first seen if it was never seen alive (zero while alive):
	// within LivenessGrace of that it still counts as live, so a lease that
	// flaps under a slow etcd does not move its chunks to other workers,
	// which would fetch them again.
	lapsed []time.Time
}

// live reports whether worker i counts as alive at now.
func (rt *routeTable) live(i int, now time.Time, grace time.Duration) bool {
	return rt.alive[i] || (!rt.lapsed[i].IsZero() && now.Sub(rt.lapsed[i]) < grace)
}

// New returns a client; Close stops its membership watch.
func New(cfg Config) (*Client, error) {
	if cfg.Members == nil || cfg.Sources == nil {
		return nil, errors.New("client: Members and Sources are required")
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = pagestore.DefaultPageSize
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 64 << 20
	}
	if cfg.ChunkSize > worker.MaxRequestBytes {
		return nil, fmt.Errorf("client: chunk size %d is more than a worker serves in one request (%d)", cfg.ChunkSize, worker.MaxRequestBytes)
	}
	if cfg.ChunkSize%cfg.PageSize != 0 {
		return nil, fmt.Errorf("client: chunk size %d is not a multiple of the page size %d", cfg.ChunkSize, cfg.PageSize)
	}
	if cfg.Local != nil && int64(cfg.Local.Store().PageSize()) != cfg.PageSize {
		return nil, fmt.Errorf("client: page size %d differs from the local worker's %d", cfg.PageSize, cfg.Local.Store().PageSize())
	}
	if cfg.HotBytes == 0 {
		cfg.HotBytes = 256 << 20
	}
	if cfg.ReadaheadBytes <= 0 {
		cfg.ReadaheadBytes = 32 << 20
	}
	if cfg.RequestBytes <= 0 {
		cfg.RequestBytes = 16 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.SuspectFor <= 0 {
		cfg.SuspectFor = 10 * time.Second
	}
	if cfg.LivenessGrace == 0 {
		cfg.LivenessGrace = 10 * time.Second
	}
	if cfg.BucketRetryFor <= 0 {
		cfg.BucketRetryFor = 30 * time.Second
	}
	if cfg.BypassLogInterval <= 0 {
		cfg.BypassLogInterval = time.Minute
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Transport: newTransport(cfg.Timeout, cfg.DialTimeout, cfg.TLS)}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Client{
		cfg:          cfg,
		pageSize:     cfg.PageSize,
		chunkPages:   int(cfg.ChunkSize / cfg.PageSize),
		requestPages: int(max(cfg.RequestBytes/cfg.PageSize, 1)),
		pages:        worker.PagesOf(cfg.PageSize),
		blocks:       cfg.RandomBlocks && worker.BlocksFit(cfg.PageSize, cfg.ChunkSize),
		members:      cfg.Members,
		sources:      cfg.Sources,
		local:        cfg.Local,
		http:         cfg.HTTP,
		log:          cfg.Logger,
		hot:          newHotTier(cfg.HotBytes, cfg.HotBudget),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
		bypass:       bypassLog{every: cfg.BypassLogInterval, log: cfg.Logger},
	}
	c.life, c.cancel = context.WithCancel(context.Background())
	c.warmHTTP = c.http
	if tr, ok := c.http.Transport.(*http.Transport); ok {
		tr = tr.Clone()
		tr.ResponseHeaderTimeout = 0
		c.warmHTTP = &http.Client{Transport: tr}
	}
	if err := c.refresh(); err != nil {
		return nil, err
	}
	go c.watch()
	return c, nil
}

// defaultDialTimeout bounds connecting to a worker: an unreachable one is
// skipped quickly, whatever the first-byte timeout.
const defaultDialTimeout = 2 * time.Second

// A worker that went silent (its node lost, its link cut: packets vanish,
// nothing refuses) is noticed by TCP, not by the first-byte timeout, which
// must stay long for a slow bucket: keepalive probes on a connection that
// receives nothing (a live worker's kernel answers them however busy the
// worker or slow its bucket), and a bound on unacknowledged sends (a
// request on a pooled connection to a silent worker). Either ends the
// connection within about deadPeerTimeout, and the read goes on at the
// next worker.
const (
	deadPeerTimeout   = 5 * time.Second
	keepAliveIdle     = 2 * time.Second
	keepAliveInterval = time.Second
	keepAliveCount    = 3
)

func newDialer(timeout, dialTimeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: min(timeout, dialTimeout),
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount,
		},
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(deadPeerTimeout.Milliseconds()))
			})
			return errors.Join(err, serr)
		},
	}
}

func newTransport(timeout, dialTimeout time.Duration, tlsConfig *tls.Config) *http.Transport {
	return &http.Transport{
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   min(timeout, 10*time.Second),
		DialContext:           newDialer(timeout, dialTimeout).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		DisableCompression:    true,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        256 << 10,
	}
}

// workerURL is the URL of path on worker m.
func (c *Client) workerURL(m membership.Member, path string) string {
	if c.cfg.TLS != nil {
		return "https://" + m.Addr + path
	}
	return "http://" + m.Addr + path
}

// Close stops watching membership and cancels and waits for fetches in
// flight (readahead included).
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.done
		c.cancel()
		c.fetching.Wait()
		c.hot.release()
	})
	return nil
}

// Stats returns the client's counters.
func (c *Client) Stats() *Stats { return &c.stats }

// PageSize is the page size the client reads in.
func (c *Client) PageSize() int64 { return c.pageSize }

// watch rebuilds the routing table whenever membership changes. It takes the
// change channel before reading the view, so no change is missed.
func (c *Client) watch() {
	defer close(c.done)
	for {
		changed := c.members.Changed()
		if err := c.refresh(); err != nil {
			c.log.Warn("membership view not usable; keeping the last one", "error", err)
		}
		select {
		case <-c.stop:
			return
		case <-changed:
		}
	}
}

// refresh rebuilds the routing table from the current membership view.
func (c *Client) refresh() error {
	v := c.members.Current()
	ws := make([]routing.Worker, len(v.Registered))
	for i, m := range v.Registered {
		ws[i] = routing.Worker{ID: m.ID, Weight: m.Weight}
	}
	t, err := routing.New(ws)
	if err != nil {
		return fmt.Errorf("build routing table: %w", err)
	}
	rt := &routeTable{table: t, members: make([]membership.Member, t.Len()),
		alive: make([]bool, t.Len()), lapsed: make([]time.Time, t.Len())}
	byID := make(map[string]membership.Member, len(v.Registered))
	for _, m := range v.Registered {
		byID[m.ID] = m
	}
	// When a lease went: carried over from the previous table, or now for
	// a worker that was alive in it or is new to this client.
	now := time.Now()
	prev := map[string]time.Time{}
	wasAlive := map[string]bool{}
	old := c.routes.Load()
	if old != nil {
		for i, m := range old.members {
			wasAlive[m.ID] = old.alive[i]
			switch {
			case old.alive[i]:
				prev[m.ID] = now
			case !old.lapsed[i].IsZero():
				prev[m.ID] = old.lapsed[i]
			}
		}
	}
	for i, w := range t.Workers() {
		rt.members[i] = byID[w.ID]
		rt.alive[i] = v.Alive[w.ID]
		if !rt.alive[i] {
			went, seen := prev[w.ID]
			if !seen {
				went = now
			}
			rt.lapsed[i] = went
		} else if old != nil && !wasAlive[w.ID] {
			// A worker that holds a lease again has started again (or
			// reached etcd again): whatever failed before, try it.
			c.suspects.Delete(w.ID)
		}
	}
	c.routes.Store(rt)
	return nil
}

// route returns up to MaxAttempts workers for a chunk, the owner first, live
// workers before those that failed lately or whose lease lapsed.
func (c *Client) route(chunkHash uint64) []membership.Member {
	rt := c.routes.Load()
	n := rt.table.Len()
	if n == 0 {
		return nil
	}
	// The best few usually suffice; look further only if they are down.
	var buf [16]int
	out := c.pick(rt, rt.table.Top(chunkHash, min(n, 2*c.cfg.MaxAttempts), buf[:0]))
	if len(out) < c.cfg.MaxAttempts && n > 2*c.cfg.MaxAttempts {
		out = c.pick(rt, rt.table.Order(chunkHash, make([]int, 0, n)))
	}
	return out
}

// pick keeps, in order, the live workers not recently failed, then the live
// ones that failed lately, then registered workers whose liveness lease ran
// out, up to MaxAttempts in all. A lapsed lease more often means etcd was
// slow or unreachable than that the worker died; trying it (a dead one
// refuses the connection at once) beats sending every reader to the bucket.
func (c *Client) pick(rt *routeTable, order []int) []membership.Member {
	out := make([]membership.Member, 0, c.cfg.MaxAttempts)
	var suspects, lapsed []membership.Member
	now := time.Now()
	for _, i := range order {
		m := rt.members[i]
		if !rt.live(i, now, c.cfg.LivenessGrace) {
			lapsed = append(lapsed, m)
			continue
		}
		if until, ok := c.suspects.Load(m.ID); ok && now.Before(until.(time.Time)) {
			suspects = append(suspects, m)
			continue
		}
		if out = append(out, m); len(out) == c.cfg.MaxAttempts {
			return out
		}
	}
	for _, m := range append(suspects, lapsed...) {
		if len(out) == c.cfg.MaxAttempts {
			break
		}
		out = append(out, m)
	}
	return out
}

// ReadAt reads len(p) bytes of obj at off into p. Like io.ReaderAt, it returns
// io.EOF when fewer bytes remain.
func (c *Client) ReadAt(ctx context.Context, obj Object, p []byte, off int64) (int, error) {
	return c.readAt(ctx, obj, obj.ID(), p, off, nil, false)
}

// slice returns obj's bytes [off, off+n), cut at the end of the object, as a
// slice of the one cached page that holds them, without copying; ok is false
// when they span pages (then use ReadAt). The slice must not be modified.
func (c *Client) slice(ctx context.Context, obj Object, id objid.ID, off int64, n int, rs *ReadStats, random bool) (data []byte, ok bool, err error) {
	if off < 0 || n <= 0 {
		return nil, false, nil
	}
	if off >= obj.Size {
		return nil, true, io.EOF
	}
	end := min(off+int64(n), obj.Size)
	u := c.pages
	if c.useBlocks(obj, id, off, end, random) {
		u = worker.BlockUnits
	}
	unit := off / u.Size
	if (end-1)/u.Size != unit {
		return nil, false, nil
	}
	k := u.Key(id, unit)
	data, err = c.unit(ctx, obj, u, k, k, rs, end-off)
	if err != nil {
		c.stats.Errors.Add(1)
		return nil, true, err
	}
	start := unit * u.Size
	c.stats.BytesRead.Add(end - off)
	if end-off < int64(n) {
		err = io.EOF
	}
	return data[off-start : end-start], true, err
}

// readAt reads p at off: in pages, or, for a random read (see
// Reader.readahead) of parts of pages not at hand, in blocks.
func (c *Client) readAt(ctx context.Context, obj Object, id objid.ID, p []byte, off int64, rs *ReadStats, random bool) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", obj.Key, off)
	}
	if off >= obj.Size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), obj.Size-off))
	end := off + int64(n)
	u := c.pages
	if c.useBlocks(obj, id, off, end, random) {
		u = worker.BlockUnits
	}
	last := u.Key(id, (end-1)/u.Size)
	for pos := off; pos < end; {
		k := u.Key(id, pos/u.Size)
		start := u.Off(k)
		data, err := c.unit(ctx, obj, u, k, last, rs, min(end, start+u.Size)-pos)
		if err != nil {
			c.stats.Errors.Add(1)
			return int(pos - off), err
		}
		if want := u.Len(k, obj.Size); int64(len(data)) != want {
			// Units are cut to the object's size; a short one must not make
			// this loop spin.
			c.stats.Errors.Add(1)
			return int(pos - off), fmt.Errorf("read %s: unit at %d has %d bytes, want %d", obj.Key, start, len(data), want)
		}
		hi := min(int64(len(data)), end-start)
		copy(p[pos-off:], data[pos-start:hi])
		pos = start + hi
	}
	c.stats.BytesRead.Add(int64(n))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// useBlocks says whether a read of [off, end) of obj goes in blocks: it is
// random, blocks fit, and it needs part of a page that is neither in the hot
// tier nor on its way (those serve the read whole).
func (c *Client) useBlocks(obj Object, id objid.ID, off, end int64, random bool) bool {
	if !random || !c.blocks {
		return false
	}
	for p := off / c.pageSize; p*c.pageSize < end; p++ {
		start := p * c.pageSize
		if off <= start && end >= min(start+c.pageSize, obj.Size) {
			continue // the whole page is read
		}
		k := c.pages.Key(id, p)
		if c.hot.contains(k) {
			continue
		}
		if _, ok := c.flights.Join(k); ok {
			continue
		}
		return true
	}
	return false
}

// unit returns unit k of obj (a page or a block) for a read of n of its
// bytes: from the hot tier, a fetch in flight, or a new fetch of the missing
// units from k to last. The n bytes count in rs by where they came from;
// the new fetches' failovers and bypass count there too.
func (c *Client) unit(ctx context.Context, obj Object, u worker.Units, k, last pagestore.Key, rs *ReadStats, n int64) ([]byte, error) {
	for {
		if data, src, fromSrc, ok := c.hot.get(k, n); ok {
			c.stats.HotHits.Add(1)
			rs.add(src, fromSrc, n)
			return data, nil
		}
		call, ok := c.flights.Join(k)
		if ok {
			c.stats.Joined.Add(1)
		} else {
			call = c.fetchUnits(obj, u, k, last.Page, rs)
		}
		if call == nil {
			continue // it reached the hot tier meanwhile
		}
		data, err := call.Wait(ctx)
		if err != nil {
			return nil, err
		}
		// The first reads of a fetched page count as its source, later
		// ones as memory; for a page not in the tier, the fetch says.
		src, fromSrc, ok := c.hot.consume(k, n)
		if !ok {
			src, fromSrc = Source(call.Tag()), n
		}
		rs.add(src, fromSrc, n)
		return data, nil
	}
}

// fetchUnits starts fetches of the units from k to last that are neither
// hot nor in flight, one per RequestBytes within a chunk, and returns unit
// k's call. What they cost (failovers, bypass) counts in rs.
//
// Fetches always run in goroutines of their own, even of one unit that the
// caller will only wait for: the caller's context (a FUSE operation's
// timeout) must be able to give up on a fetch that stalls.
func (c *Client) fetchUnits(obj Object, u worker.Units, k pagestore.Key, last uint32, rs *ReadStats) *flight.Call {
	perPage := int(c.pageSize / u.Size)
	return c.flights.ClaimRuns(k, last, c.requestPages*perPage, c.chunkPages*perPage, c.hot.contains, func(first pagestore.Key, n int) {
		c.fetching.Add(1)
		go c.fetchRun(obj, u, first, n, rs)
	})
}

// Prefetch starts fetching [off, off+n) of obj into the hot tier and returns
// at once.
func (c *Client) Prefetch(obj Object, off, n int64) {
	c.prefetch(obj, obj.ID(), off, n, nil)
}

// prefetch is Prefetch of obj, whose identity is id, counted in rs.
func (c *Client) prefetch(obj Object, id objid.ID, off, n int64, rs *ReadStats) {
	end := min(off+n, obj.Size)
	if off < 0 || off >= end {
		return
	}
	c.fetchUnits(obj, c.pages, c.pages.Key(id, off/c.pageSize), uint32((end-1)/c.pageSize), rs)
}

// fetchRun brings n pages from first into the hot tier and to their waiters:
// from the chunk's workers in routing order, then from the bucket. It runs
// detached from any one reader, since several may wait for its pages.
func (c *Client) fetchRun(obj Object, u worker.Units, first pagestore.Key, n int, rs *ReadStats) {
	defer c.fetching.Done()
	ctx, cancel := context.WithTimeout(c.life, 10*time.Minute)
	defer cancel()
	pw := &pageWriter{c: c, u: u, first: first, n: n, size: obj.Size, src: SourceWorker}
	done, lastErr := c.fetchFromWorkers(ctx, obj, pw, rs)
	if done {
		return
	}
	c.stats.BucketReads.Add(1)
	pw.src = SourceBucket
	before := pw.done
	err := c.readFromBucket(ctx, pw.remaining(obj), pw)
	c.bypassed(rs, pw.deliveredSince(before), lastErr)
	if err != nil {
		if lastErr != nil {
			err = fmt.Errorf("%w (after workers failed: %v)", err, lastErr)
		}
		pw.fail(err)
	}
}

// fetchFromWorkers reads pw's pages from the chunk's workers in routing
// order. done says the pages were delivered or failed for good (the
// bucket's answer); otherwise the caller reads the bucket directly, and
// lastErr says why. While the bucket throttles (the worker says so), it
// asks again after a backoff, up to BucketRetryFor, rather than reading
// the bucket itself: a throttled store must see fewer requests, not one
// more from every client.
func (c *Client) fetchFromWorkers(ctx context.Context, obj Object, pw *pageWriter, rs *ReadStats) (done bool, lastErr error) {
	chunk := pw.u.Off(pw.first) / c.cfg.ChunkSize
	var bo *backoff.ExponentialBackOff
	start := time.Now()
	for {
		lastErr = nil
		for _, m := range c.route(pw.first.File.ChunkHash(chunk)) {
			err := c.readFromWorker(ctx, m, pw.remaining(obj), pw)
			if err == nil && pw.done == pw.n {
				return true, nil
			}
			if err == nil {
				err = fmt.Errorf("worker %s sent %d of %d pages", m.ID, pw.done, pw.n)
			}
			lastErr = err
			if errors.Is(err, ufs.ErrNotFound) || errors.Is(err, ufs.ErrVersionMismatch) || errors.Is(err, worker.ErrStoreChecksum) {
				pw.fail(err) // the bucket's answer; asking elsewhere would not change it
				return true, err
			}
			if errors.Is(err, errBucketAtWorker) {
				break // the worker reached the bucket and the bucket failed
			}
			c.stats.Failovers.Add(1)
			rs.failover()
			c.suspects.Store(m.ID, time.Now().Add(c.cfg.SuspectFor))
			c.log.Warn("worker read failed; trying the next", "worker", m.ID, "addr", m.Addr, "key", obj.Key, "error", err)
		}
		if !errors.Is(lastErr, ufs.ErrThrottled) {
			return false, lastErr
		}
		if bo == nil {
			bo = &backoff.ExponentialBackOff{InitialInterval: 250 * time.Millisecond, RandomizationFactor: 0.5,
				Multiplier: 2, MaxInterval: 4 * time.Second}
		}
		wait := bo.NextBackOff()
		if time.Since(start)+wait > c.cfg.BucketRetryFor {
			err := fmt.Errorf("read %s: the bucket still throttles after %v: %w", obj.Key, time.Since(start).Round(time.Second), lastErr)
			pw.fail(err)
			return true, err
		}
		c.stats.BucketRetries.Add(1)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			pw.fail(ctx.Err())
			return true, ctx.Err()
		}
	}
}

// bypassed counts n bytes read from the bucket directly, in rs and the
// client's stats, and warns (once per BypassLogInterval) with the cause.
func (c *Client) bypassed(rs *ReadStats, n int64, lastErr error) {
	cause := bypassCause(lastErr)
	c.stats.BypassedBytes.Add(n)
	rs.bypassed(n, cause)
	c.bypass.note(n, cause)
}

var errBucketAtWorker = errors.New("the bucket failed at the worker")

// readFromWorker streams req from worker m into pw.
func (c *Client) readFromWorker(ctx context.Context, m membership.Member, req worker.Request, pw *pageWriter) error {
	if c.local != nil && m.ID == c.local.ID() {
		c.stats.LocalReads.Add(1)
		pw.checked = true
		err := c.local.Read(ctx, req, pw)
		pw.checked = false
		if err != nil && worker.CauseOf(err) == worker.CauseBucket {
			// The bucket failed (or refused the credentials) at the worker,
			// as a remote worker's status or trailer would say: no reason
			// to suspect the worker.
			err = fmt.Errorf("%w: %w", errBucketAtWorker, err)
		}
		return err
	}
	c.stats.RemoteReads.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := req.Query()
	q.Set(worker.SumsParam, "1")
	url := c.workerURL(m, worker.ReadPath) + "?" + q.Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("request to worker %s: %w", m.ID, err)
	}
	worker.SetCredentialHeaders(hreq.Header, req.Creds)
	resp, err := c.http.Do(hreq)
	if err != nil {
		return fmt.Errorf("worker %s: %w", m.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return workerStatusError(m, resp)
	}
	watch := stall.Start(c.cfg.Timeout, cancel)
	defer watch.Stop()
	body := watch.Reader(resp.Body)
	var dst io.Writer = pw
	if req.Blocks && resp.Header.Get(worker.UnitHeader) != worker.UnitBlock {
		return fmt.Errorf("worker %s answered a read of blocks without blocks (a worker of an older version?)", m.ID)
	}
	if resp.Header.Get(worker.SumsHeader) == worker.SumsCRC32C {
		if ps := resp.Header.Get(worker.PageSizeHeader); ps != strconv.FormatInt(c.pageSize, 10) {
			return fmt.Errorf("worker %s: its pages are of %s bytes, this client's of %d", m.ID, ps, c.pageSize)
		}
		dst = &sumReader{pw: pw}
	}
	if _, err := io.Copy(dst, body); err != nil {
		return fmt.Errorf("read from worker %s: %w", m.ID, err)
	}
	if code, err := strconv.Atoi(resp.Trailer.Get(worker.StatusTrailer)); err == nil {
		// The worker failed after its first pages and said why.
		msg := resp.Trailer.Get(worker.ErrorTrailer)
		if len(msg) > maxWorkerMessage {
			msg = msg[:maxWorkerMessage]
		}
		return workerError(m, code, resp.Trailer.Get(worker.CauseHeader),
			fmt.Sprintf("after %d of %d pages: %s", pw.done, pw.n, msg))
	}
	return nil
}

// maxWorkerMessage bounds the text of a worker's error kept in an error
// (and logged).
const maxWorkerMessage = 4096

// workerStatusError is the error of a worker's answer that is not 200.
func workerStatusError(m membership.Member, resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxWorkerMessage))
	return workerError(m, resp.StatusCode, resp.Header.Get(worker.CauseHeader), string(bytes.TrimSpace(msg)))
}

// workerError is the error a worker told with status code, cause
// (worker.CauseHeader) and msg, in its header or its trailer: one of the
// bucket's own answers (not found, changed), errBucketAtWorker when the
// bucket failed at the worker, or else the worker's own failure.
func workerError(m membership.Member, code int, cause, msg string) error {
	err := fmt.Errorf("worker %s: %d %s: %s", m.ID, code, http.StatusText(code), msg)
	switch {
	case code == worker.StatusNotFound:
		return fmt.Errorf("%w: %v", ufs.ErrNotFound, err)
	case code == worker.StatusVersionMismatch:
		return fmt.Errorf("%w: %v", ufs.ErrVersionMismatch, err)
	case cause == worker.CauseChecksum:
		return fmt.Errorf("%w: %v", worker.ErrStoreChecksum, err)
	case cause == worker.CauseBucket && code == worker.StatusThrottled:
		return fmt.Errorf("%w: %w: %v", errBucketAtWorker, ufs.ErrThrottled, err)
	case code == http.StatusForbidden:
		return fmt.Errorf("%w: %w: %v", errBucketAtWorker, ufs.ErrAccessDenied, err)
	case cause == worker.CauseBucket:
		return fmt.Errorf("%w: %v", errBucketAtWorker, err)
	}
	return err
}

// readFromBucket reads req straight from the bucket into pw.
func (c *Client) readFromBucket(ctx context.Context, req worker.Request, pw *pageWriter) error {
	u, err := c.sources.Open(ctx, req.Source)
	if err != nil {
		return fmt.Errorf("open source %s: %w", req.Source, err)
	}
	// A bucket that sends nothing for Timeout is given up, as a worker is.
	ctx, watch, release := stall.WithContext(ctx, c.cfg.Timeout, fmt.Errorf("%w for %v", ufs.ErrStalled, c.cfg.Timeout))
	defer release()
	body, err := u.ReadRange(ctx, req.Key, req.Version, req.Off, req.Len)
	if err != nil {
		return watch.Err(err)
	}
	defer body.Close()
	if size, ok := ufs.ObjectSize(body); ok && size != req.Size {
		return fmt.Errorf("read %s from the bucket: %w: the store says %d bytes, the listing %d", req.Key, ufs.ErrVersionMismatch, size, req.Size)
	}
	if _, err := io.Copy(pw, watch.Reader(body)); err != nil {
		return fmt.Errorf("read %s from the bucket: %w", req.Key, err)
	}
	if pw.done < pw.n {
		return fmt.Errorf("read %s from the bucket: %w", req.Key, io.ErrUnexpectedEOF)
	}
	return nil
}

// pageWriter cuts a byte stream into pages and delivers each one, when
// complete, to the hot tier and to its waiters.
type pageWriter struct {
	c     *Client
	u     worker.Units // pages, or blocks
	first pagestore.Key
	n     int
	size  int64
	src   Source // where the bytes come from now
	// checked says the in-process worker is writing: it took each page's
	// checksum from the bytes it hands over (its store checks them against
	// the checksum as it reads them; a fetch sums the bytes it received), so
	// TakeSummed has nothing to check again.
	checked bool

	done int    // pages delivered
	buf  []byte // the page being filled
	fill int
}

func (w *pageWriter) pageLen(i int) int64 {
	return w.u.Len(w.key(i), w.size)
}

// key is the key of unit i of the run.
func (w *pageWriter) key(i int) pagestore.Key {
	return pagestore.Key{File: w.first.File, Page: w.first.Page + uint32(i)}
}

// deliveredSince is the bytes of the pages delivered after the first i.
func (w *pageWriter) deliveredSince(i int) int64 {
	var n int64
	for ; i < w.done; i++ {
		n += w.pageLen(i)
	}
	return n
}

// remaining is the request for the pages not delivered yet; a partly filled
// page is dropped and asked for again.
func (w *pageWriter) remaining(obj Object) worker.Request {
	w.buf, w.fill = nil, 0
	off := w.u.Off(w.key(w.done))
	end := min(w.u.Off(w.first)+int64(w.n)*w.u.Size, w.size)
	return worker.Request{Source: obj.Source, Key: obj.Key, Version: obj.Version, Size: obj.Size, Off: off, Len: end - off,
		Creds: w.c.cfg.Credentials, Blocks: w.u.Size != w.c.pageSize}
}

// ReadFrom reads a stream (the bucket's bytes) straight into new pages,
// without io.Copy's buffer in between.
func (w *pageWriter) ReadFrom(src io.Reader) (int64, error) {
	var total int64
	for {
		if w.buf == nil {
			if w.done >= w.n {
				// Anything more is more than was asked for.
				var one [1]byte
				if n, _ := io.ReadFull(src, one[:]); n > 0 {
					return total, errors.New("more bytes than requested")
				}
				return total, nil
			}
			w.buf, w.fill = make([]byte, w.pageLen(w.done)), 0
		}
		n, err := io.ReadFull(src, w.buf[w.fill:])
		w.fill += n
		total += int64(n)
		if w.fill == len(w.buf) {
			w.deliver(w.buf)
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return total, nil // the caller counts the pages delivered
		case err != nil:
			return total, err
		}
	}
}

func (w *pageWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if w.done >= w.n {
			return total - len(p), errors.New("more bytes than requested")
		}
		if w.buf == nil {
			w.buf, w.fill = make([]byte, w.pageLen(w.done)), 0
		}
		k := copy(w.buf[w.fill:], p)
		w.fill += k
		p = p[k:]
		if w.fill == len(w.buf) {
			w.deliver(w.buf)
		}
	}
	return total, nil
}

// TakePage keeps a whole page without copying it: worker.Read hands over
// pages it fetched, which nobody modifies. Anything else is copied by Write.
func (w *pageWriter) TakePage(p []byte) error {
	if w.buf != nil || w.done >= w.n || int64(len(p)) != w.pageLen(w.done) {
		_, err := w.Write(p)
		return err
	}
	w.deliver(p)
	return nil
}

// TakeSummed takes a whole page with its checksum (from the in-process
// worker, or framed in a worker's response): a page from another worker is
// delivered only if the checksum matches its bytes and its key; one from
// the in-process worker was checked there (checked).
func (w *pageWriter) TakeSummed(p []byte, sum uint32, owned bool) error {
	if w.buf != nil || w.done >= w.n || int64(len(p)) != w.pageLen(w.done) {
		return fmt.Errorf("unit at %d of %d bytes out of place", w.u.Off(w.key(min(w.done, w.n-1))), len(p))
	}
	if err := w.verify(w.key(w.done), p, sum); err != nil {
		w.c.stats.BadSums.Add(1)
		return err
	}
	if !owned {
		p = append([]byte(nil), p...)
	}
	w.deliver(p)
	return nil
}

// verify checks page p of unit key against the worker's checksum, unless
// the in-process worker sent it (checked).
func (w *pageWriter) verify(key pagestore.Key, p []byte, sum uint32) error {
	if w.checked {
		return nil
	}
	if got := pagestore.Checksum(key, p); got != sum {
		return fmt.Errorf("unit at %d: %w: checksum %08x, the worker's %08x", w.u.Off(key), pagestore.ErrChecksum, got, sum)
	}
	return nil
}

// sumReader cuts a framed response (worker.SumsHeader) into pages and
// hands each to the pageWriter with its checksum.
type sumReader struct {
	pw   *pageWriter
	hdr  [worker.SumBytes]byte
	nhdr int
	page []byte
	fill int
}

// ReadFrom reads a framed response straight into new pages: io.Copy
// would read it through a buffer of its own first, one more copy of every
// byte (with the HTTP client's read buffer, two). An end of the response
// between pages is the end; within one it is io.ErrUnexpectedEOF.
func (r *sumReader) ReadFrom(src io.Reader) (int64, error) {
	if r.nhdr != 0 || r.page != nil {
		return 0, errors.New("sumReader: ReadFrom after Write")
	}
	var total int64
	for {
		n, err := io.ReadFull(src, r.hdr[:])
		total += int64(n)
		switch {
		case err == io.EOF:
			return total, nil
		case err != nil:
			return total, err
		case r.pw.done >= r.pw.n:
			return total, errors.New("more bytes than requested")
		}
		page := make([]byte, r.pw.pageLen(r.pw.done))
		n, err = io.ReadFull(src, page)
		total += int64(n)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return total, err
		}
		if err := r.pw.TakeSummed(page, binary.LittleEndian.Uint32(r.hdr[:]), true); err != nil {
			return total, err
		}
	}
}

func (r *sumReader) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if r.nhdr < len(r.hdr) {
			k := copy(r.hdr[r.nhdr:], p)
			r.nhdr += k
			p = p[k:]
			continue
		}
		if r.page == nil {
			if r.pw.done >= r.pw.n {
				return total - len(p), errors.New("more bytes than requested")
			}
			r.page, r.fill = make([]byte, r.pw.pageLen(r.pw.done)), 0
		}
		k := copy(r.page[r.fill:], p)
		r.fill += k
		p = p[k:]
		if r.fill == len(r.page) {
			if err := r.pw.TakeSummed(r.page, binary.LittleEndian.Uint32(r.hdr[:]), true); err != nil {
				return total - len(p), err
			}
			r.page, r.nhdr = nil, 0
		}
	}
	return total, nil
}

func (w *pageWriter) deliver(page []byte) {
	key := w.key(w.done)
	w.c.hot.put(key, page, w.src)
	w.c.flights.FinishTagged(key, page, uint8(w.src), nil)
	w.done++
	w.buf = nil
}

// fail hands err to the waiters of every page not delivered.
func (w *pageWriter) fail(err error) {
	for i := w.done; i < w.n; i++ {
		w.c.flights.Finish(pagestore.Key{File: w.first.File, Page: w.first.Page + uint32(i)}, nil, err)
	}
	w.done = w.n
}

// View returns the membership view the client routes over.
func (c *Client) View() membership.View { return c.members.Current() }
