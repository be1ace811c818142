package worker

import (
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/ufs"
)

// ListPath serves bucket listings from a cache shared by every client of the
// cluster: the first client to list a page fetches it from the bucket (once,
// however many ask at the same moment), the others get the cached page until
// its TTL runs out.
const ListPath = "/v1/list"

// ListRequest asks for one page of a listing.
type ListRequest struct {
	Source objid.Source
	Opt    ufs.ListOptions
	// TTL is how old a cached page the caller accepts; 0 bypasses the cache.
	TTL time.Duration
	// Creds, if set, are the tenant's: the listing is made with them, and
	// cached pages are shared only among requests with the same
	// credentials, so no tenant sees a listing its credentials cannot make.
	Creds *ufs.Credentials
}

// Query encodes r for ListPath.
func (r ListRequest) Query() url.Values {
	return url.Values{
		"src": {r.Source.String()}, "prefix": {r.Opt.Prefix}, "delim": {r.Opt.Delimiter},
		"after": {r.Opt.StartAfter}, "max": {strconv.Itoa(r.Opt.MaxKeys)}, "ttl": {r.TTL.String()},
	}
}

// ParseListRequest decodes a query made by ListRequest.Query.
func ParseListRequest(q url.Values) (ListRequest, error) {
	src, err := objid.ParseSource(q.Get("src"))
	if err != nil {
		return ListRequest{}, fmt.Errorf("parameter src: %w", err)
	}
	r := ListRequest{Source: src, Opt: ufs.ListOptions{
		Prefix: q.Get("prefix"), Delimiter: q.Get("delim"), StartAfter: q.Get("after")}}
	if r.Opt.MaxKeys, err = strconv.Atoi(q.Get("max")); err != nil {
		return r, fmt.Errorf("parameter max: %w", err)
	}
	if r.TTL, err = time.ParseDuration(q.Get("ttl")); err != nil {
		return r, fmt.Errorf("parameter ttl: %w", err)
	}
	return r, r.Validate()
}

// Validate reports a malformed listing request.
func (r ListRequest) Validate() error {
	switch {
	case r.Source.Validate() != nil:
		return fmt.Errorf("parameter src: %w", r.Source.Validate())
	case len(r.Opt.Prefix) > MaxKeyBytes || len(r.Opt.StartAfter) > MaxKeyBytes+4:
		return fmt.Errorf("parameters prefix and after: at most %d bytes", MaxKeyBytes)
	case r.Opt.Delimiter != "" && r.Opt.Delimiter != "/":
		return fmt.Errorf("parameter delim %q: want \"\" or \"/\"", r.Opt.Delimiter)
	case r.Opt.MaxKeys < 0 || r.Opt.MaxKeys > MaxListKeys:
		return fmt.Errorf("parameter max %d: want 0 to %d", r.Opt.MaxKeys, MaxListKeys)
	case r.TTL < 0:
		return fmt.Errorf("parameter ttl %s: negative", r.TTL)
	}
	return nil
}

// MaxListKeys bounds the keys plus prefixes of one listing page, as S3
// does.
const MaxListKeys = 1000

// maxListTTL caps how long a worker keeps a listing page, whatever clients ask.
const maxListTTL = time.Hour

// listCache is an LRU of listing pages with expiry times, bounded in
// entries and in bytes (a page of 1,000 keys of 1 KiB each is 1 MiB).
type listCache struct {
	limit      int
	limitBytes int64
	flight     singleflight.Group
	mu         struct {
		sync.Mutex
		m     map[string]*list.Element
		lru   list.List // *listEntry, most recent first
		bytes int64
	}
}

type listEntry struct {
	key     string
	page    ufs.ListPage
	fetched time.Time
	bytes   int64
}

// DefaultListCacheBytes bounds a worker's listing cache.
const DefaultListCacheBytes = 64 << 20

func newListCache(limit int, limitBytes int64) *listCache {
	c := &listCache{limit: limit, limitBytes: limitBytes}
	c.mu.m = make(map[string]*list.Element)
	return c
}

// pageBytes estimates the memory a cached page takes.
func pageBytes(key string, p ufs.ListPage) int64 {
	n := int64(len(key)+len(p.Next)) + 128
	for _, o := range p.Objects {
		n += int64(len(o.Key)+len(o.Version)) + 80 // Object header, time, strings
	}
	for _, s := range p.Prefixes {
		n += int64(len(s)) + 16
	}
	return n
}

func (c *listCache) get(key string, ttl time.Duration) (ufs.ListPage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.mu.m[key]
	if !ok {
		return ufs.ListPage{}, false
	}
	le := e.Value.(*listEntry)
	if time.Since(le.fetched) > min(ttl, maxListTTL) {
		return ufs.ListPage{}, false
	}
	c.mu.lru.MoveToFront(e)
	return le.page, true
}

func (c *listCache) put(key string, page ufs.ListPage, fetched time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.mu.m[key]; ok {
		c.mu.bytes -= c.mu.lru.Remove(e).(*listEntry).bytes
		delete(c.mu.m, key)
	}
	n := pageBytes(key, page)
	if n > c.limitBytes {
		return // larger than the whole cache: not kept
	}
	c.mu.m[key] = c.mu.lru.PushFront(&listEntry{key: key, page: page, fetched: fetched, bytes: n})
	c.mu.bytes += n
	for c.mu.lru.Len() > c.limit || c.mu.bytes > c.limitBytes {
		old := c.mu.lru.Remove(c.mu.lru.Back()).(*listEntry)
		delete(c.mu.m, old.key)
		c.mu.bytes -= old.bytes
	}
}

// List returns one listing page, from the shared cache when it is fresh
// enough for the caller.
func (w *Worker) List(ctx context.Context, r ListRequest) (ufs.ListPage, error) {
	fp := ""
	if r.Creds != nil {
		fp = r.Creds.Fingerprint()
	}
	key := fp + "\x00" + r.Source.String() + "\x00" + r.Opt.Prefix + "\x00" + r.Opt.Delimiter + "\x00" + r.Opt.StartAfter + "\x00" + strconv.Itoa(r.Opt.MaxKeys)
	if r.TTL > 0 {
		if p, ok := w.lists.get(key, r.TTL); ok {
			w.stats.ListHits.Add(1)
			return p, nil
		}
	}
	v, err, _ := w.lists.flight.Do(key, func() (any, error) {
		u, err := w.bucket(ctx, Request{Source: r.Source, Creds: r.Creds})
		if err != nil {
			return nil, err
		}
		start := time.Now()
		p, err := u.List(ctx, r.Opt)
		if err != nil {
			w.stats.ListErrors.Add(1)
			return nil, err
		}
		w.stats.Lists.Add(1)
		w.lists.put(key, p, start)
		return p, nil
	})
	if err != nil {
		return ufs.ListPage{}, err
	}
	return v.(ufs.ListPage), nil
}

func (w *Worker) serveList(rw http.ResponseWriter, r *http.Request) {
	req, err := ParseListRequest(r.URL.Query())
	if err == nil {
		req.Creds, err = credentialsOf(r.Header)
	}
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	page, err := w.List(r.Context(), req)
	if err != nil {
		writeError(rw, err)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	json.NewEncoder(rw).Encode(page)
}
