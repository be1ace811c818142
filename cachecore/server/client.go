package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
)

// ClientConfig says how a process reaches the cache: through a cluster in
// etcd, or through a worker embedded in the process (the default when Etcd has
// no endpoints).
type ClientConfig struct {
	Etcd membership.EtcdConfig
	// Embedded worker, used without etcd.
	CacheDir string
	Capacity int64
	PageSize int
	// Client tuning; zero values take the client's defaults.
	Client client.Config
	// TLS is the client side of mutual TLS to the cluster's workers
	// (mtls.Files.ClientConfig). Cluster mode needs it unless InsecureDev.
	TLS         *tls.Config
	InsecureDev bool
	// Credentials, if set, are passed to the cluster's workers with every
	// request (see client.Config.Credentials). The embedded worker does
	// not get them: it reads through the bucket handle the caller opened
	// (Open), with these same credentials, into the caller's own cache
	// dir, so a HEAD per object to authorize its hits would prove nothing
	// more (and cost a cold small file a HEAD besides its GET, a warm one
	// a HEAD where it needed no request at all).
	Credentials *ufs.Credentials
	S3          ufs.S3Config
	Logger      *slog.Logger
}

// Client is a cache client with what it needs to run.
type Client struct {
	*client.Client
	Sources *sources.Registry
	// Embedded is the in-process worker, or nil in cluster mode.
	Embedded *Worker

	closers   []func() error
	closeOnce sync.Once
	closeErr  error
}

// NewClient connects to the cache as cfg says.
func NewClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Client{Sources: sources.New(cfg.S3, true)}
	ccfg := cfg.Client
	ccfg.Sources, ccfg.Logger = c.Sources, cfg.Logger
	if len(cfg.Etcd.Endpoints) > 0 {
		ccfg.Credentials = cfg.Credentials
		if cfg.TLS == nil && !cfg.InsecureDev {
			return nil, errors.New("reading through a cache cluster needs mutual TLS (--tls-ca, --tls-cert, --tls-key), or --insecure-dev for a local test cluster")
		}
		ccfg.TLS = cfg.TLS
		w, err := membership.Watch(ctx, cfg.Etcd)
		if err != nil {
			return nil, fmt.Errorf("watch cache cluster: %w", err)
		}
		c.closers = append(c.closers, w.Close)
		ccfg.Members = w
	} else {
		if cfg.CacheDir == "" {
			return nil, errors.New("no --etcd cluster and no --cache-dir for an embedded cache")
		}
		w, err := StartWorker(ctx, WorkerConfig{
			ID: "local", CacheDir: cfg.CacheDir, Capacity: cfg.Capacity,
			PageSize: cfg.PageSize, S3: cfg.S3, Logger: cfg.Logger,
			// Its one client keeps what it reads (a mount's page cache,
			// the client's hot pages): no second copy in ours.
			DirectReads: true,
			// A bucket that sends nothing is given up as soon by the
			// worker as by the client (which calls it directly, with no
			// wait of its own on the worker's answer).
			FetchStall: cfg.Client.Timeout,
		})
		if err != nil {
			return nil, err
		}
		c.Embedded = w
		c.closers = append(c.closers, w.Close)
		members, err := membership.Static(w.Member())
		if err != nil {
			c.Close()
			return nil, err
		}
		ccfg.Members, ccfg.Local = members, w.Worker
		ccfg.PageSize = int64(w.Store.PageSize())
	}
	cl, err := client.New(ccfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.Client = cl
	c.closers = append(c.closers, cl.Close)
	return c, nil
}

// Open opens the bucket of a source URI (s3://bucket or file:///dir) and makes
// it available to the client's fallback and, when embedded, to its worker.
func (c *Client) Open(ctx context.Context, loc ufs.Location, s3 ufs.S3Config) (ufs.UFS, error) {
	u, err := ufs.Open(ctx, loc, s3)
	if err != nil {
		return nil, err
	}
	c.Sources.Add(u)
	if c.Embedded != nil {
		c.Embedded.Sources.Add(u)
	}
	return u, nil
}

// Close stops the client and anything it started, last started first.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		var errs []error
		for i := len(c.closers) - 1; i >= 0; i-- {
			errs = append(errs, c.closers[i]())
		}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// DefaultCacheDir is where an embedded cache lives unless told otherwise.
func DefaultCacheDir(home string) string { return filepath.Join(home, ".cache", "hoard") }
