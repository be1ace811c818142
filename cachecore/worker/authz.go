package worker

import (
	"context"
	"errors"
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

// DefaultAuthGrace is how long after its TTL a store's yes still counts
// while the store cannot answer (unreachable, 5xx, throttling: ufs.
// ErrUnavailable): the tenant it confirmed keeps reading that version's
// cached pages through a bucket outage, as hoard promises, while a tenant
// the store never confirmed, or refused, gets nothing. A store that answers
// is always asked once the TTL has passed, so a revoked grant ends within
// the TTL while the store is up, and within TTL+grace while it is down.
const DefaultAuthGrace = 10 * time.Minute

// maxAuthEntries bounds the authorization cache; past it, entries past
// their grace are swept, and if none were, the cache starts over.
const maxAuthEntries = 100_000

type authKey struct {
	fp string
	id objid.ID
}

// authCache remembers which credentials the store let read which object
// version, and when: a hit is served only to a tenant the store confirmed
// within the TTL (or within TTL+grace while the store cannot answer), and
// one HEAD per tenant and object and TTL is all it costs.
type authCache struct {
	ttl, grace time.Duration
	mu         struct {
		sync.Mutex
		m map[authKey]time.Time // when the store last said yes
	}
}

func newAuthCache(ttl, grace time.Duration) *authCache {
	c := &authCache{ttl: ttl, grace: grace}
	c.mu.m = make(map[authKey]time.Time)
	return c
}

// allowed says whether k was confirmed within the TTL (fresh) or, failing
// that, within the TTL and grace (usable only while the store cannot answer).
func (c *authCache) allowed(k authKey, now time.Time) (fresh, inGrace bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.mu.m[k]
	if !ok {
		return false, false
	}
	age := now.Sub(at)
	return age < c.ttl, age < c.ttl+c.grace
}

func (c *authCache) allow(k authKey, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.mu.m) >= maxAuthEntries {
		for k, at := range c.mu.m {
			if now.Sub(at) >= c.ttl+c.grace {
				delete(c.mu.m, k)
			}
		}
		if len(c.mu.m) >= maxAuthEntries {
			clear(c.mu.m)
		}
	}
	c.mu.m[k] = now
}

// forget drops k: the store said no (or that the version is gone), so no
// grace may let it read later.
func (c *authCache) forget(k authKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.mu.m, k)
}

// authorize lets req go on, cached pages included, only if the worker may
// read its source with its own identity (the operator allowed that; the
// request carries no credentials), or if the store confirmed, within the
// TTL, that the request's credentials may read exactly this version and
// size of the object (a HEAD with them). While the store cannot answer
// (ufs.ErrUnavailable), a confirmation within TTL+grace stands. With
// AuthorizeOwn a request without credentials needs that confirmation too,
// for the worker's own identity.
func (w *Worker) authorize(ctx context.Context, req Request) error {
	if req.Creds == nil && !w.checkOwn {
		_, err := w.bucket(ctx, req) // refused unless own credentials are allowed for the source
		return err
	}
	k := authKey{id: req.ID()} // fp "": the worker's own identity
	if req.Creds != nil {
		k.fp = req.Creds.Fingerprint()
	}
	fresh, inGrace := w.auth.allowed(k, time.Now())
	if fresh {
		return nil
	}
	err := w.confirm(ctx, req)
	switch {
	case err == nil:
		w.auth.allow(k, time.Now())
		return nil
	case inGrace && errors.Is(err, ufs.ErrUnavailable):
		w.stats.AuthGraced.Add(1)
		return nil
	case errors.Is(err, ufs.ErrUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err // no answer: an earlier yes may still count later
	default:
		w.auth.forget(k)
		return err
	}
}

// confirm asks the store (a HEAD with req's credentials) whether they may
// read exactly req's version and size of the object.
func (w *Worker) confirm(ctx context.Context, req Request) error {
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
