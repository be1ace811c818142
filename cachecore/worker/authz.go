package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/pagestore"
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
//
// k is req's reader (authKeyOf). A read needs no HEAD when cold: see
// authorizeRead.
func (w *Worker) authorize(ctx context.Context, req Request, k authKey) error {
	if req.Creds == nil && !w.checkOwn {
		_, err := w.bucket(ctx, req) // refused unless own credentials are allowed for the source
		return err
	}
	return w.check(ctx, req, k)
}

// authorizeRead is authorize for Read, where a cold request needs no HEAD:
// if its first page (first) is neither cached nor in flight and its reader
// was not confirmed within the TTL, it returns byFetch, and the request's
// own GET of that page, made with its credentials, confirms them instead
// (proven); until then the request is served nothing. A HEAD before every
// cold object doubled the bucket's requests in a cold epoch of small files.
func (w *Worker) authorizeRead(ctx context.Context, req Request, k authKey, first pagestore.Key) (byFetch bool, err error) {
	if (req.Creds != nil || w.checkOwn) && req.Len > 0 && !req.Blocks && !w.store.Contains(first) {
		if fresh, _ := w.auth.allowed(k, time.Now()); fresh {
			return false, nil
		}
		if _, busy := w.flights.Join(first); !busy {
			return true, nil
		}
	}
	return false, w.authorize(ctx, req, k)
}

// authKeyOf is what the authorization cache knows req's reader by; id is
// req.ID().
func authKeyOf(req Request, id objid.ID) authKey {
	k := authKey{id: id} // fp "": the worker's own identity
	if req.Creds != nil {
		k.fp = req.Creds.Fingerprint()
	}
	return k
}

// check is authorize's HEAD: it asks the store unless k's confirmation
// is fresh, and remembers the answer.
func (w *Worker) check(ctx context.Context, req Request, k authKey) error {
	fresh, inGrace := w.auth.allowed(k, time.Now())
	if fresh {
		return nil
	}
	err := w.confirmWithin(ctx, req, inGrace)
	switch {
	case err == nil:
		w.auth.allow(k, time.Now())
		return nil
	case inGrace && errors.Is(err, ufs.ErrUnavailable):
		w.stats.AuthGraced.Add(1)
		return nil
	default:
		w.dropOnNo(k, err)
		return err
	}
}

// errStoreSlow is the cause of a HEAD cut short by GraceHeadTimeout.
var errStoreSlow = errors.New("the store did not answer the authorization HEAD in time")

// confirmWithin is confirm, bounded by GraceHeadTimeout when the reader has
// a yes within its grace: a store that does not answer by then counts as
// unavailable (the minio-go transport would wait a minute per attempt).
func (w *Worker) confirmWithin(ctx context.Context, req Request, inGrace bool) error {
	if !inGrace {
		return w.confirm(ctx, req)
	}
	hctx, cancel := context.WithTimeoutCause(ctx, w.graceHead, errStoreSlow)
	defer cancel()
	err := w.confirm(hctx, req)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(hctx), errStoreSlow) {
		return fmt.Errorf("%w: %w (after %v)", ufs.ErrUnavailable, errStoreSlow, w.graceHead)
	}
	return err
}

// dropOnNo forgets k's confirmation after a definite no from the store;
// after no answer (unavailable, canceled) an earlier yes may still count.
func (w *Worker) dropOnNo(k authKey, err error) {
	if errors.Is(err, ufs.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	w.auth.forget(k)
}

// proven returns the first page k of a request that authorizeRead let go
// on byFetch: from a fetch this request claims, whose GET reads the bucket
// with the request's credentials and checks the version (If-Match) and the
// size (Content-Range; see open), as the HEAD would have. Its success is
// remembered as the HEAD's yes would be. If the page was cached or taken
// into another request's fetch meanwhile, the HEAD is made after all
// before anything is served.
func (w *Worker) proven(ctx context.Context, req Request, ak authKey, k, last pagestore.Key, buf []byte) ([]byte, uint32, error) {
	u := PagesOf(w.pageSize)
	call, mine := w.fetchFrom(req, u, k, last.Page)
	if !mine {
		if err := w.check(ctx, req, ak); err != nil {
			return nil, 0, err
		}
		return w.unit(ctx, req, u, k, last, buf)
	}
	w.stats.PageMisses.Add(1)
	data, err := call.Wait(ctx)
	if err == nil && int64(len(data)) != u.Len(k, req.Size) {
		err = fmt.Errorf("page %d of %s/%s has %d bytes, want %d", k.Page, req.Source, req.Key, len(data), u.Len(k, req.Size))
	}
	if err != nil {
		w.dropOnNo(ak, err)
		return nil, 0, err
	}
	w.stats.AuthByFetch.Add(1)
	w.auth.allow(ak, time.Now())
	return data, call.Sum(), nil
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
