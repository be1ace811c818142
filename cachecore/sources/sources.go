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
// Sources added with Add stay; sources opened on request are kept in an LRU
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
		added  map[objid.Source]ufs.UFS
		opened map[openedKey]*list.Element // of opened, most recent first
		lru    list.List
	}
}

// New returns an empty registry. With openS3 true, an S3 source that was not
// added is opened on first use with defaults (endpoint and scheme taken from
// the source name, credentials and options from defaults).
func New(defaults ufs.S3Config, openS3 bool) *Registry {
	r := &Registry{s3: defaults, anyS3: openS3, maxOpened: DefaultMaxOpened}
	r.mu.added = make(map[objid.Source]ufs.UFS)
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

// Add makes u available under u.Source().
func (r *Registry) Add(u ufs.UFS) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.added[u.Source()] = u
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

// OpenAs returns the bucket named source, reading with creds. A source added
// with Add (a file:// source the operator serves) is returned as it is. An S3
// source must be allowed by the policy.
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
	return len(r.mu.added) + r.mu.lru.Len()
}

// Open returns the bucket named source. An S3 source is reached with the
// scheme its name carries (s3+http or s3+https), whatever the defaults say.
func (r *Registry) Open(ctx context.Context, source objid.Source) (ufs.UFS, error) {
	return r.open(ctx, source, ufs.Credentials{}, func(p *Policy) error {
		if !(matchAny(p.Allow, source) && matchAny(p.Own, source)) {
			return fmt.Errorf("source %s: %w to be read with this worker's own credentials (--own-credentials-for); the client sent none", source, ErrNotAllowed)
		}
		return nil
	})
}

// open returns an added source as it is; an S3 one if the registry opens
// S3 sources and, when it has a policy, allowed says yes, opened with creds.
func (r *Registry) open(ctx context.Context, source objid.Source, creds ufs.Credentials, allowed func(*Policy) error) (ufs.UFS, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u, ok := r.mu.added[source]; ok {
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
