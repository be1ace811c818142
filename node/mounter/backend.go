package mounter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/volume"
)

// backendKey says which volumes may share a backend: the same bucket reached
// the same way with the same credentials, through the same cache.
type backendKey struct {
	endpoint, region    string
	pathStyle, insecure bool
	bucket              string
	creds               string // Credentials.ID(), never the credentials
	cluster             string // "" for the embedded cache
}

// id is a short name for logs and list: the bucket and 8 hex digits of the
// whole key.
func (k backendKey) id() string {
	h := sha256.Sum256(fmt.Appendf(nil, "%q|%q|%t|%t|%q|%q|%q",
		k.endpoint, k.region, k.pathStyle, k.insecure, k.bucket, k.creds, k.cluster))
	return k.bucket + "-" + hex.EncodeToString(h[:4])
}

// backend is one cache client and the bucket it reads, shared by every
// session whose volume has its key. Fields other than refs are set once,
// before ready is closed.
type backend struct {
	key     backendKey
	id      string
	created time.Time
	ready   chan struct{} // closed when opened (err says how)
	err     error

	reader *client.Client
	bucket ufs.UFS // the whole bucket; sessions add their prefix
	// shared: listings go through the cache cluster (client.SharedListing).
	shared bool
	close  func() error

	refs int // sessions (and serve requests) using it; guarded by Mounter.mu
}

// acquire returns the backend for key, opening it if no session uses one,
// and counts one more user; release undoes it. Concurrent first users of a
// key wait for the one open.
func (m *Mounter) acquire(ctx context.Context, key backendKey, req Request) (*backend, error) {
	m.mu.Lock()
	b := m.backends[key]
	opener := b == nil
	if opener {
		b = &backend{key: key, id: key.id(), created: time.Now(), ready: make(chan struct{})}
		m.backends[key] = b
	}
	b.refs++
	m.mu.Unlock()

	if opener {
		// The first caller's cancellation must not fail the others waiting.
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.OpenTimeout)
		b.err = m.open(octx, b, req)
		cancel()
		close(b.ready)
		if b.err != nil {
			m.mu.Lock()
			if m.backends[key] == b {
				delete(m.backends, key)
			}
			m.mu.Unlock()
			return nil, b.err
		}
		m.log.Info("mounter: backend opened", "backend", b.id, "bucket", key.bucket,
			"endpoint", key.endpoint, "cache", m.cacheName(key.cluster))
		return b, nil
	}
	select {
	case <-b.ready:
	case <-ctx.Done():
		m.release(b)
		return nil, &Error{Code: codes.DeadlineExceeded, Msg: "waiting for the cache backend of " + key.bucket + ": " + ctx.Err().Error()}
	}
	if b.err != nil {
		return nil, b.err // the opener removed it; refs no longer matter
	}
	return b, nil
}

// release counts one user less and closes the backend when nobody uses it.
func (m *Mounter) release(b *backend) {
	m.mu.Lock()
	b.refs--
	last := b.refs == 0 && m.backends[b.key] == b
	if last {
		delete(m.backends, b.key)
	}
	m.mu.Unlock()
	if !last {
		return
	}
	<-b.ready
	if b.err == nil && b.close != nil {
		if err := b.close(); err != nil {
			m.log.Warn("mounter: closing backend", "backend", b.id, "error", err)
		}
		m.log.Info("mounter: backend closed", "backend", b.id, "bucket", b.key.bucket)
	}
}

// open makes b's cache client and opens its bucket.
func (m *Mounter) open(ctx context.Context, b *backend, req Request) error {
	src := req.Source
	s3 := ufs.S3Config{
		Endpoint: src.Endpoint, Region: src.Region, PathStyle: src.PathStyle, Insecure: src.Insecure,
		CABundle: m.cfg.S3.CABundle,
	}
	if s3.Region == "" {
		s3.Region = m.cfg.S3.Region
	}
	if c := req.Credentials; c != nil {
		s3.AccessKey, s3.SecretKey, s3.SessionToken = c.AccessKeyID, c.SecretAccessKey, c.SessionToken
	}
	loc := ufs.Location{Scheme: "s3", Bucket: src.Bucket}
	log := m.log.With("backend", b.id)
	creds := volumeCredentials(s3)

	if m.embedded == nil {
		etcd := m.cfg.Etcd
		etcd.Cluster = b.key.cluster
		c, err := server.NewClient(ctx, server.ClientConfig{
			Etcd: etcd, S3: s3, Client: client.Config{HotBytes: m.cfg.HotBytes, HotBudget: m.hot}, Logger: log,
			TLS: m.cfg.TLS, InsecureDev: m.cfg.InsecureDev, Credentials: creds,
		})
		if err != nil {
			return &Error{Code: codes.Unavailable, Msg: fmt.Sprintf("cache cluster %q: %v", b.key.cluster, err)}
		}
		u, err := c.Open(ctx, loc, s3)
		if err == nil {
			err = m.ambientAllowed(u, creds)
		}
		if err != nil {
			c.Close()
			return openError(src.Bucket, err)
		}
		b.reader, b.bucket, b.shared, b.close = c.Client, u, true, c.Close
		return nil
	}

	u, err := ufs.Open(ctx, loc, s3)
	if err == nil {
		err = m.ambientAllowed(u, creds)
	}
	if err != nil {
		closeBucket(u)
		return openError(src.Bucket, err)
	}
	cl, err := m.embeddedClient(u, creds, log)
	if err != nil {
		closeBucket(u)
		return err
	}
	// The embedded worker reads for this backend through u alone, and
	// only for requests with the volume's credentials (nil: the node's
	// identity, which the worker authorizes the same way): a HEAD with them
	// before it serves any byte of an object, cached or not, and the
	// misses fetched with them. No backend reads with another's handle.
	var unregister func()
	if creds != nil {
		unregister = m.embedded.Sources.AddAs(u, *creds)
	} else {
		unregister = m.embedded.Sources.Add(u)
	}
	b.reader, b.bucket = cl, u
	b.close = func() error {
		err := cl.Close()
		unregister()
		closeBucket(u)
		return err
	}
	return nil
}

// embeddedClient is a backend's cache client of the embedded worker: it
// passes creds with every request, and reads the bucket u itself (u has
// the same rights) when the worker cannot.
func (m *Mounter) embeddedClient(u ufs.UFS, creds *ufs.Credentials, log *slog.Logger) (*client.Client, error) {
	reg := sources.New(ufs.S3Config{}, false)
	reg.Add(u)
	members, err := membership.Static(m.embedded.Member())
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{
		Members: members, Sources: reg, Local: m.embedded.Worker, Credentials: creds,
		PageSize: int64(m.embedded.Store.PageSize()), HotBytes: m.cfg.HotBytes, HotBudget: m.hot, Logger: log,
	})
}

// ambientAllowed refuses a volume without credentials whose source the
// operator did not let this process read with its own identity
// (Config.OwnCredentialsFor).
func (m *Mounter) ambientAllowed(u ufs.UFS, creds *ufs.Credentials) error {
	if creds != nil {
		return nil
	}
	src := u.Source()
	for _, p := range m.cfg.OwnCredentialsFor {
		if p.Match(src) {
			return nil
		}
	}
	return &Error{Code: codes.PermissionDenied, Msg: fmt.Sprintf(
		"the volume has no Secret, and this mounter reads %s with its own identity only if --own-credentials-for allows it: give the volume a node-stage Secret, or allow the source",
		src)}
}

func openError(bucket string, err error) error {
	var me *Error
	if errors.As(err, &me) {
		return err
	}
	return &Error{Code: codes.InvalidArgument, Msg: fmt.Sprintf("bucket %s: %v", bucket, err)}
}

// closeBucket releases u's idle connections.
func closeBucket(u ufs.UFS) {
	if c, ok := u.(io.Closer); ok {
		c.Close()
	}
}

// probe checks the bucket with ufs.Probe, so that a missing bucket, refused
// credentials or an unreachable store fail the stage with a clear message and
// the code volume.BucketStatus gives it, instead of failing every read later.
func probe(ctx context.Context, u ufs.UFS, prefix string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := ufs.Probe(ctx, u, prefix)
	if err == nil {
		return nil
	}
	st := status.Convert(volume.BucketStatus(u.Source().String(), err))
	return &Error{Code: st.Code(), Msg: st.Message()}
}

// volumeCredentials are the credentials of a volume's node-stage Secret,
// passed to workers so that they read with the volume's rights (nil for a
// volume without a Secret: workers then use their own identity where their
// operator allows it).
func volumeCredentials(s3 ufs.S3Config) *ufs.Credentials {
	if s3.AccessKey == "" {
		return nil
	}
	c := s3.StaticCredentials()
	return &c
}
