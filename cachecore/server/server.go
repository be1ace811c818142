package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/cachecore/worker"
	"hoard.dev/hoard/internal/buildinfo"
	"hoard.dev/hoard/internal/metrics"
)

// WorkerConfig configures one worker process.
type WorkerConfig struct {
	// ID is the worker's stable identity; empty means the one kept in
	// CacheDir (created on first start).
	ID string
	// Listen is the address to serve on (host:port; port 0 picks one).
	Listen string
	// Advertise is the address clients use; empty means the listener's.
	Advertise string
	CacheDir  string
	Capacity  int64
	PageSize  int
	Weight    float64
	// Etcd, if it has endpoints, is where the worker registers.
	Etcd membership.EtcdConfig
	// S3 is used to open S3 sources clients ask for.
	S3 ufs.S3Config
	// Files are file:// sources this worker serves (never opened on request).
	Files []string
	// TLS is the server side of mutual TLS (mtls.Files.ServerConfig): only
	// clients with a certificate of the cluster's CA are served. A worker
	// that listens refuses to start without it unless InsecureDev is set.
	TLS *tls.Config
	// Policy says which S3 sources the worker opens on request and which it
	// reads with its own credentials (see sources.Policy). A worker that
	// listens needs one: nil there opens nothing on request. In-process
	// (embedded) workers without a policy open any S3 source.
	Policy *sources.Policy
	// AuthorizeOwn: requests without credentials are authorized with a
	// HEAD too (worker.Config.AuthorizeOwn).
	AuthorizeOwn bool
	// HealthAddr, if set, serves /healthz, /readyz and /metrics (and
	// nothing else) over plain HTTP, for probes and scrapers that hold no client
	// certificate.
	HealthAddr string
	// InsecureDev serves plain HTTP to anyone who can connect: for `hoard
	// dev` and tests on loopback only.
	InsecureDev bool
	// VerifyStoreChecksum: worker.Config.VerifyStoreChecksum.
	VerifyStoreChecksum bool
	// FetchStall, FetchTimeout: worker.Config's (0: its defaults, 20 s and
	// 2 min).
	FetchStall, FetchTimeout time.Duration
	// DirectReads: pagestore.Config.DirectReads (set for the embedded
	// worker, whose one client is a FUSE mount or a reader in the process).
	DirectReads bool
	// AuthTTL, AuthGrace: worker.Config's (0: its defaults).
	AuthTTL, AuthGrace time.Duration
	Logger             *slog.Logger
}

// Worker is a running worker process.
type Worker struct {
	Worker   *worker.Worker
	Store    *pagestore.Store
	Sources  *sources.Registry
	Addr     string // advertised address
	Registry *prometheus.Registry

	srv    *http.Server
	health *http.Server
	ln     net.Listener
	// reg is set once registered; the metrics collector may read it
	// before.
	reg atomic.Pointer[membership.Registration]
	log *slog.Logger
}

// StartWorker opens the store, starts serving and registers the worker. Stop
// it with Close.
func StartWorker(ctx context.Context, cfg WorkerConfig) (*Worker, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CacheDir == "" {
		return nil, errors.New("worker: a cache dir is required (--cache-dir)")
	}
	if cfg.Capacity <= 0 {
		return nil, errors.New("worker: capacity must be positive (--capacity, e.g. 10GiB)")
	}
	id, err := workerID(cfg.CacheDir, cfg.ID)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("worker", id)
	store, err := pagestore.Open(pagestore.Config{
		Dir: filepath.Join(cfg.CacheDir, "pages"), Capacity: cfg.Capacity, PageSize: cfg.PageSize,
		DirectReads: cfg.DirectReads, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("open page store: %w", err)
	}
	srcs := sources.New(cfg.S3, true)
	switch {
	case cfg.Policy != nil:
		srcs.SetPolicy(*cfg.Policy)
	case cfg.Listen != "":
		srcs.SetPolicy(sources.Policy{}) // nothing on request
	}
	for _, f := range cfg.Files {
		loc, err := ufs.ParseSource(f)
		if err != nil || loc.Scheme != "file" {
			store.Close()
			return nil, fmt.Errorf("worker: served file source %q: want file:///absolute/dir", f)
		}
		u, err := ufs.NewLocal(loc.Bucket)
		if err != nil {
			store.Close()
			return nil, err
		}
		srcs.Add(u)
	}
	w, err := worker.New(worker.Config{ID: id, Store: store, Sources: srcs, AuthorizeOwn: cfg.AuthorizeOwn,
		VerifyStoreChecksum: cfg.VerifyStoreChecksum, AuthTTL: cfg.AuthTTL, AuthGrace: cfg.AuthGrace,
		FetchStall: cfg.FetchStall, FetchTimeout: cfg.FetchTimeout, Logger: log})
	if err != nil {
		store.Close()
		return nil, err
	}
	s := &Worker{Worker: w, Store: store, Sources: srcs, Addr: "in-process", log: log,
		Registry: metrics.NewRegistry("worker", buildinfo.Version)}
	s.Registry.MustRegister(NewWorkerCollector(s))
	if cfg.Listen != "" {
		if cfg.TLS == nil && !cfg.InsecureDev {
			store.Close()
			return nil, errors.New("worker: serving needs mutual TLS (--tls-ca, --tls-cert, --tls-key; `hoard certs` makes a CA for a test cluster), or --insecure-dev for a local test cluster")
		}
		if err := s.serve(cfg.Listen, cfg.Advertise, cfg.TLS); err != nil {
			store.Close()
			return nil, err
		}
	}
	if cfg.HealthAddr != "" {
		if err := s.serveHealth(cfg.HealthAddr); err != nil {
			s.Close()
			return nil, err
		}
	}
	if len(cfg.Etcd.Endpoints) > 0 {
		if s.srv == nil {
			store.Close()
			return nil, errors.New("worker: registering in etcd needs --listen")
		}
		m := membership.Member{ID: id, Addr: s.Addr, Weight: cfg.Weight, Capacity: cfg.Capacity}
		reg, err := membership.Register(ctx, cfg.Etcd, m)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("worker: register in etcd: %w", err)
		}
		s.reg.Store(reg)
	}
	log.Info("worker serving", "addr", s.Addr, "cache_dir", cfg.CacheDir, "capacity", cfg.Capacity,
		"etcd", strings.Join(cfg.Etcd.Endpoints, ","))
	return s, nil
}

// serve starts the HTTP server: reads, health and metrics.
func (s *Worker) serve(listen, advertise string, tlsConfig *tls.Config) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("worker: listen on %s: %w", listen, err)
	}
	s.ln, s.Addr = ln, advertise
	if s.Addr == "" {
		s.Addr = ln.Addr().String()
	}
	mux := http.NewServeMux()
	mux.Handle("/", s.Worker.Handler())
	mux.Handle("GET "+metrics.Path, metrics.Handler(s.Registry))
	s.srv = newHTTPServer(mux, s.log)
	if tlsConfig != nil {
		s.srv.TLSConfig = tlsConfig
		ln = tls.NewListener(ln, tlsConfig)
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("worker server stopped", "error", err)
		}
	}()
	return nil
}

// serveHealth serves /healthz, /readyz and /metrics (metrics.Ops) on addr,
// without TLS.
func (s *Worker) serveHealth(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("worker: health address %s: %w", addr, err)
	}
	s.health = newHTTPServer(metrics.Ops{Gatherer: s.Registry}.Handler(), s.log)
	go func() {
		if err := s.health.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("worker health server stopped", "error", err)
		}
	}()
	return nil
}

// Timeouts of a worker's HTTP server. Requests have no body (no
// ReadTimeout: net/http would cancel a request still waiting for the bucket
// when it expires); one response is at most one chunk
// (worker.MaxRequestBytes), which even a slow client takes well within
// WriteTimeout, and a stalled one is cut there.
const (
	readHeaderTimeout = 10 * time.Second
	writeTimeout      = 5 * time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// Member is how the worker appears in membership.
func (s *Worker) Member() membership.Member {
	return membership.Member{ID: s.Worker.ID(), Addr: s.Addr, Weight: 1, Capacity: s.Store.Budget()}
}

// Close deregisters liveness, stops serving and closes the store.
func (s *Worker) Close() error {
	var errs []error
	if reg := s.reg.Load(); reg != nil {
		errs = append(errs, reg.Close())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.srv != nil {
		if err := s.srv.Shutdown(ctx); err != nil {
			errs = append(errs, s.srv.Close())
		}
	}
	if s.health != nil {
		s.health.Close()
	}
	s.Worker.Close()
	errs = append(errs, s.Store.Close())
	return errors.Join(errs...)
}

// workerID returns id, or the ID kept in dir/worker-id, creating it.
func workerID(dir, id string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create cache dir: %w", err)
	}
	name := filepath.Join(dir, "worker-id")
	if id != "" {
		return id, os.WriteFile(name, []byte(id+"\n"), 0o600)
	}
	if b, err := os.ReadFile(name); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	}
	host, _ := os.Hostname()
	var r [4]byte
	rand.Read(r[:])
	id = fmt.Sprintf("%s-%s", strings.ReplaceAll(host, "/", "-"), hex.EncodeToString(r[:]))
	return id, os.WriteFile(name, []byte(id+"\n"), 0o600)
}
