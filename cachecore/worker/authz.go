package worker

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/ufs"
)

// Headers that carry a tenant's credentials with a request. They travel
// only inside the workers' mutual TLS and are never logged.
const (
	AccessKeyHeader    = "X-Hoard-Access-Key-Id"
	SecretKeyHeader    = "X-Hoard-Secret-Access-Key"
	SessionTokenHeader = "X-Hoard-Session-Token"
)

// SetCredentialHeaders puts creds on h.
func SetCredentialHeaders(h http.Header, creds *ufs.Credentials) {
	if creds == nil || creds.IsZero() {
		return
	}
	h.Set(AccessKeyHeader, creds.AccessKey)
	h.Set(SecretKeyHeader, creds.SecretKey)
	if creds.SessionToken != "" {
		h.Set(SessionTokenHeader, creds.SessionToken)
	}
}

// maxCredentialBytes bounds each credential header.
const maxCredentialBytes = 4096

// credentialsOf returns the credentials of a request, nil if it has none.
func credentialsOf(h http.Header) (*ufs.Credentials, error) {
	c := ufs.Credentials{AccessKey: h.Get(AccessKeyHeader), SecretKey: h.Get(SecretKeyHeader), SessionToken: h.Get(SessionTokenHeader)}
	if c.IsZero() {
		return nil, nil
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return nil, fmt.Errorf("%w: credentials need both %s and %s", ErrBadRequest, AccessKeyHeader, SecretKeyHeader)
	}
	if len(c.AccessKey) > maxCredentialBytes || len(c.SecretKey) > maxCredentialBytes || len(c.SessionToken) > maxCredentialBytes {
		return nil, fmt.Errorf("%w: credential headers longer than %d bytes", ErrBadRequest, maxCredentialBytes)
	}
	return &c, nil
}

// DefaultAuthTTL is how long a store's yes (a HEAD with a tenant's
// credentials) lets that tenant read an object's cached pages.
const DefaultAuthTTL = time.Minute

// maxAuthEntries bounds the authorization cache; past it, expired entries
// are swept, and if none were, the cache starts over.
const maxAuthEntries = 100_000

type authKey struct {
	fp string
	id objid.ID
}

// authCache remembers which credentials the store let read which object
// version, for a short TTL: a hit is served only to a tenant the store
// confirmed, and one HEAD per tenant and object and TTL is all it costs.
type authCache struct {
	ttl time.Duration
	mu  struct {
		sync.Mutex
		m map[authKey]time.Time // until
	}
}

func newAuthCache(ttl time.Duration) *authCache {
	c := &authCache{ttl: ttl}
	c.mu.m = make(map[authKey]time.Time)
	return c
}

func (c *authCache) allowed(k authKey, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.mu.m[k]
	return ok && now.Before(until)
}

func (c *authCache) allow(k authKey, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.mu.m) >= maxAuthEntries {
		for k, until := range c.mu.m {
			if !now.Before(until) {
				delete(c.mu.m, k)
			}
		}
		if len(c.mu.m) >= maxAuthEntries {
			clear(c.mu.m)
		}
	}
	c.mu.m[k] = now.Add(c.ttl)
}

// authorize lets req go on, cached pages included, only if the worker may
// read its source with its own identity (the operator allowed that; the
// request carries no credentials), or if the store confirmed, within the
// TTL, that the request's credentials may read exactly this version and
// size of the object (a HEAD with them). With AuthorizeOwn a request
// without credentials needs that confirmation too, for the worker's own
// identity.
func (w *Worker) authorize(ctx context.Context, req Request) error {
	if req.Creds == nil && !w.checkOwn {
		_, err := w.bucket(ctx, req) // refused unless own credentials are allowed for the source
		return err
	}
	k := authKey{id: req.ID()} // fp "": the worker's own identity
	if req.Creds != nil {
		k.fp = req.Creds.Fingerprint()
	}
	if w.auth.allowed(k, time.Now()) {
		return nil
	}
	u, err := w.bucket(ctx, req)
	if err != nil {
		return err
	}
	st, err := u.Stat(ctx, req.Key)
	w.stats.AuthChecks.Add(1)
	if err != nil {
		return err
	}
	if st.Version != req.Version || st.Size != req.Size {
		return fmt.Errorf("%s/%s: %w: the store has version %s of %d bytes", req.Source, req.Key, ufs.ErrVersionMismatch, st.Version, st.Size)
	}
	w.auth.allow(k, time.Now())
	return nil
}

// bucket opens req's source with the request's credentials, or the
// worker's own when it has none.
func (w *Worker) bucket(ctx context.Context, req Request) (ufs.UFS, error) {
	var u ufs.UFS
	var err error
	if req.Creds != nil {
		u, err = w.sources.OpenAs(ctx, req.Source, *req.Creds)
	} else {
		u, err = w.sources.Open(ctx, req.Source)
	}
	if err != nil {
		return nil, fmt.Errorf("open source %s: %w", req.Source, err)
	}
	return u, nil
}
