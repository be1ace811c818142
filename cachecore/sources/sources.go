package sources

import (
	"container/list"
	"context"
	"fmt"
	"io"
	"sync"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/ufs"
)

// DefaultMaxOpened bounds the sources a registry opens on request.
const DefaultMaxOpened = 256

// Registry is a set of opened buckets. It is safe for concurrent use.
//
// Sources added with Add or AddAs stay until their remove function is
// called; sources opened on request are kept in an LRU
// of at most MaxOpened, and the least recently used one is closed (its idle
// connections released) when another is opened: a client naming many
// sources cannot make the registry grow without bound.
type Registry struct {
	s3        ufs.S3Config
	anyS3     bool
	maxOpened int
	policy    *Policy // nil: any S3 source, with the process's own identity
	mu        struct {
		sync.Mutex
		// added holds the handles added per source and identity (the
		// credentials' fingerprint, "" for the process's own), the latest
		// last: any of them reads with the same rights.
		added  map[openedKey][]ufs.UFS
		opened map[openedKey]*list.Element // of opened, most recent first
		lru    list.List
	}
}

// New returns an empty registry. With openS3 true, an S3 source that was not
// added is opened on first use with defaults (endpoint and scheme taken from
// the source name, credentials and options from defaults).
func New(defaults ufs.S3Config, openS3 bool) *Registry {
	r := &Registry{s3: defaults, anyS3: openS3, maxOpened: DefaultMaxOpened}
	r.mu.added = make(map[openedKey][]ufs.UFS)
	r.mu.opened = make(map[openedKey]*list.Element)
	return r
}

// SetMaxOpened changes the bound on sources opened on request (n >= 1).
func (r *Registry) SetMaxOpened(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxOpened = max(n, 1)
	r.trim()
}

// Add makes u, a bucket opened with the process's own identity (or a
// file:// directory), available under u.Source() to requests without
// credentials, and a file:// source to every request. S3 requests with
// credentials never get it: they get a handle added with those same
// credentials (AddAs), or one opened with them on request. remove takes u
// out again.
func (r *Registry) Add(u ufs.UFS) (remove func()) { return r.add(u, "") }

// AddAs makes u, a bucket opened with creds, available under u.Source() to
// requests that carry the same credentials (OpenAs), and to no other.
// remove takes it out again; other handles of the same source and
// credentials stay.
func (r *Registry) AddAs(u ufs.UFS, creds ufs.Credentials) (remove func()) {
	if creds.IsZero() {
		return r.add(u, "")
	}
	return r.add(u, creds.Fingerprint())
}

func (r *Registry) add(u ufs.UFS, fp string) (remove func()) {
	k := openedKey{u.Source(), fp}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.added[k] = append(r.mu.added[k], u)
	var once sync.Once
	return func() { once.Do(func() { r.remove(k, u) }) }
}

func (r *Registry) remove(k openedKey, u ufs.UFS) {
	r.mu.Lock()
	defer r.mu.Unlock()
	hs := r.mu.added[k]
	for i, h := range hs {
		if h == u {
			hs = append(hs[:i:i], hs[i+1:]...)
			break
		}
	}
	if len(hs) == 0 {
		delete(r.mu.added, k)
		return
	}
	r.mu.added[k] = hs
}

// addedLocked returns the handle added for source and identity fp: the latest
// one of that identity, or for a file:// source the one added by Add.
func (r *Registry) addedLocked(source objid.Source, fp string) (ufs.UFS, bool) {
	if hs := r.mu.added[openedKey{source, fp}]; len(hs) > 0 {
		return hs[len(hs)-1], true
	}
	if fp != "" && !source.IsS3() {
		return r.addedLocked(source, "")
	}
	return nil, false
}

// SetPolicy restricts the S3 sources opened on request to p (see Policy).
// Call it before the registry is used.
func (r *Registry) SetPolicy(p Policy) { r.policy = &p }

// opened is a source opened on request, with the default (own) identity
// (fp "") or a tenant's credentials (their fingerprint).
type opened struct {
	src objid.Source
	fp  string
	u   ufs.UFS
}

type openedKey struct {
	src objid.Source
	fp  string
}

// ErrNotAllowed is returned for a source the policy does not let the
// registry open.
var ErrNotAllowed = fmt.Errorf("source not allowed by the operator: %w", ufs.ErrAccessDenied)

// OpenAs returns the bucket named source, reading with creds: a handle
// added with these credentials (AddAs), a file:// source added with Add
// (one the operator serves), or an S3 source the policy allows, opened
// with creds. Never a handle of other credentials or of the process's own.
func (r *Registry) OpenAs(ctx context.Context, source objid.Source, creds ufs.Credentials) (ufs.UFS, error) {
	return r.open(ctx, source, creds, func(p *Policy) error {
		if !matchAny(p.Allow, source) {
			return fmt.Errorf("source %s: %w (--allow-source)", source, ErrNotAllowed)
		}
		return nil
	})
}

// Len is the number of sources held, added and opened.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.mu.lru.Len()
	for _, hs := range r.mu.added {
		n += len(hs)
	}
	return n
}

// Open returns the bucket named source for a request without credentials:
// one added with Add, or one the policy lets the process open with its own
// identity. An S3 source is reached with the scheme its name carries
// (s3+http or s3+https), whatever the defaults say.
func (r *Registry) Open(ctx context.Context, source objid.Source) (ufs.UFS, error) {
	return r.open(ctx, source, ufs.Credentials{}, func(p *Policy) error {
		if !(matchAny(p.Allow, source) && matchAny(p.Own, source)) {
			return fmt.Errorf("source %s: %w to be read with this worker's own credentials (--own-credentials-for); the client sent none", source, ErrNotAllowed)
		}
		return nil
	})
}

// open returns a source added for creds' identity as it is; an S3 one if
// the registry opens S3 sources and, when it has a policy, allowed says yes,
// opened with creds.
func (r *Registry) open(ctx context.Context, source objid.Source, creds ufs.Credentials, allowed func(*Policy) error) (ufs.UFS, error) {
	fp := ""
	if !creds.IsZero() {
		fp = creds.Fingerprint()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if u, ok := r.addedLocked(source, fp); ok {
		return u, nil
	}
	if !r.anyS3 || !source.IsS3() {
		return nil, fmt.Errorf("source %s is not served here", source)
	}
	if r.policy != nil {
		if err := allowed(r.policy); err != nil {
			return nil, err
		}
	}
	return r.openLocked(ctx, source, creds)
}

// openLocked opens source with creds (zero: the defaults' own), or returns
// it from the LRU.
func (r *Registry) openLocked(ctx context.Context, source objid.Source, creds ufs.Credentials) (ufs.UFS, error) {
	key := openedKey{source, ""}
	if !creds.IsZero() {
		key.fp = creds.Fingerprint()
	}
	if e, ok := r.mu.opened[key]; ok {
		r.mu.lru.MoveToFront(e)
		return e.Value.(opened).u, nil
	}
	if err := source.Validate(); err != nil {
		return nil, fmt.Errorf("source %s: %w", source, err)
	}
	cfg := r.s3
	cfg.Endpoint = source.EndpointURL()
	if !creds.IsZero() {
		cfg = cfg.WithCredentials(creds)
	}
	u, err := ufs.NewS3(ctx, source.Bucket, cfg)
	if err != nil {
		return nil, fmt.Errorf("open source %s: %w", source, err)
	}
	r.mu.opened[key] = r.mu.lru.PushFront(opened{source, key.fp, u})
	r.trim()
	return u, nil
}

// trim closes the least recently used opened sources beyond the bound.
func (r *Registry) trim() {
	for r.mu.lru.Len() > r.maxOpened {
		o := r.mu.lru.Remove(r.mu.lru.Back()).(opened)
		delete(r.mu.opened, openedKey{o.src, o.fp})
		if c, ok := o.u.(io.Closer); ok {
			c.Close()
		}
	}
}
