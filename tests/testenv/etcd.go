package testenv

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const (
	// etcdReadyTimeout bounds how long a start waits for the server to serve.
	etcdReadyTimeout = 20 * time.Second
	// etcdRebindTimeout bounds how long Restart retries a port that is still
	// held by the previous incarnation.
	etcdRebindTimeout = 10 * time.Second
)

// Etcd is a single-member etcd server embedded in the test process, listening
// on 127.0.0.1 only. It can be stopped and restarted on the same ports and data
// directory, to test clients through an etcd outage.
type Etcd struct {
	dir       string
	clientURL url.URL
	peerURL   url.URL

	// stopping mutes the server's log while it shuts down: etcd logs its own
	// listeners closing ("mux: server closed") at error level.
	stopping atomic.Bool

	mu  sync.Mutex
	srv *embed.Etcd // nil while stopped
}

// StartEtcd starts an embedded etcd on free loopback ports with its data in a
// temporary directory. It is closed when the test ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	base := t.TempDir()
	var lastErr error
	// A free port can be taken by someone else between our probe and etcd's
	// bind; try again on other ports (and a fresh data dir, as a failed start
	// may have initialised one with the old peer URL).
	for attempt := range 5 {
		cport, pport, err := freePorts()
		if err != nil {
			t.Fatalf("testenv: etcd: %v", err)
		}
		e := &Etcd{
			dir:       filepath.Join(base, fmt.Sprintf("etcd-%d", attempt)),
			clientURL: url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", cport)},
			peerURL:   url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", pport)},
		}
		srv, err := e.start()
		if err == nil {
			e.srv = srv
			t.Cleanup(e.close)
			return e
		}
		lastErr = err
		if !isAddrInUse(err) {
			break
		}
	}
	t.Fatalf("testenv: start etcd: %v", lastErr)
	return nil
}

// Endpoints returns the client URLs, the same across Stop and Restart.
func (e *Etcd) Endpoints() []string { return []string{e.clientURL.String()} }

// Stop closes the server, keeping its data dir and ports for Restart. Clients
// see connection refused until then.
func (e *Etcd) Stop(t testing.TB) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		t.Fatalf("testenv: etcd Stop: not running")
	}
	e.closeLocked()
}

// Restart starts the server again on the same ports and data dir, retrying for
// a while if a port is not free yet.
func (e *Etcd) Restart(t testing.TB) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		t.Fatalf("testenv: etcd Restart: already running")
	}
	deadline := time.Now().Add(etcdRebindTimeout)
	for {
		srv, err := e.start()
		if err == nil {
			e.srv = srv
			return
		}
		if !isAddrInUse(err) || time.Now().After(deadline) {
			t.Fatalf("testenv: restart etcd: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// NewClient returns a client of this server with logging off, closed when the
// test ends.
func (e *Etcd) NewClient(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("testenv: etcd client: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func (e *Etcd) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		e.closeLocked()
	}
}

func (e *Etcd) closeLocked() {
	e.stopping.Store(true)
	e.srv.Close()
	e.srv = nil
}

func (e *Etcd) start() (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "testenv"
	cfg.Dir = e.dir
	cfg.ListenClientUrls = []url.URL{e.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{e.clientURL}
	cfg.ListenPeerUrls = []url.URL{e.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{e.peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(e.logger())
	cfg.EnableGRPCGateway = false
	e.stopping.Store(false)

	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	timer := time.NewTimer(etcdReadyTimeout)
	defer timer.Stop()
	select {
	case <-srv.Server.ReadyNotify():
		return srv, nil
	case err := <-srv.Err():
		srv.Close()
		return nil, fmt.Errorf("etcd failed before it was ready: %w", err)
	case <-timer.C:
		srv.Server.Stop()
		srv.Close()
		return nil, fmt.Errorf("etcd not ready within %s", etcdReadyTimeout)
	}
}

// logger writes the server's errors to stderr as JSON, except while it is
// being stopped on purpose.
func (e *Etcd) logger() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), zapcore.ErrorLevel)
	return zap.New(&mutedCore{Core: core, muted: &e.stopping})
}

type mutedCore struct {
	zapcore.Core
	muted *atomic.Bool
}

func (c *mutedCore) With(fields []zapcore.Field) zapcore.Core {
	return &mutedCore{Core: c.Core.With(fields), muted: c.muted}
}

func (c *mutedCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.muted.Load() || !c.Enabled(ent.Level) {
		return ce
	}
	return ce.AddCore(ent, c)
}

// freePorts returns two distinct free loopback TCP ports.
func freePorts() (string, string, error) {
	for range 10 {
		a, err := pickPort("127.0.0.1")
		if err != nil {
			return "", "", err
		}
		b, err := pickPort("127.0.0.1")
		if err != nil {
			return "", "", err
		}
		if a != b {
			return strconv.Itoa(a), strconv.Itoa(b), nil
		}
	}
	return "", "", errors.New("find two free ports: drew the same port ten times")
}

func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}
