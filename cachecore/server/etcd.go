package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// EtcdConfig describes one member of an etcd cluster run inside a hoard
// process: a coordinator of a cache cluster (hoard coordinator) or the
// single member of a local one (hoard dev).
type EtcdConfig struct {
	// Name is the member's name, unique in the cluster (in Kubernetes, the
	// StatefulSet pod's name).
	Name string
	// Dir holds the member's data; it must survive restarts.
	Dir string
	// ListenClient and ListenPeer are the addresses to serve on, host:port.
	ListenClient, ListenPeer string
	// AdvertiseClient and AdvertisePeer are the URLs others use to reach
	// this member. Empty AdvertisePeer means this member's entry in
	// InitialCluster, else http://<listen address>; empty AdvertiseClient
	// means the advertised peer URL's host with the client listen port.
	// (So members of a StatefulSet, whose pods share one spec, need only
	// the initial cluster and their own name.)
	AdvertiseClient, AdvertisePeer string
	// InitialCluster lists every member at bootstrap as name=peerURL,...;
	// empty means this member alone. Only read when Dir is empty.
	InitialCluster string
	// ClusterToken tells apart clusters bootstrapped from the same names.
	ClusterToken string
	// Existing joins a running cluster (after `etcdctl member add`) instead
	// of bootstrapping a new one.
	Existing bool
	// QuotaBytes bounds the backend database (0: etcd's default, 2 GiB).
	QuotaBytes int64
	// ReadyTimeout bounds the wait for the member to serve (default 30 s).
	// A member of a new multi-member cluster waits for a quorum of peers.
	ReadyTimeout time.Duration
	// LogLevel is etcd's own (debug, info, warn, error); default error.
	LogLevel string
}

// maxMembers bounds the initial cluster: etcd clusters beyond 7 members are
// slower, never safer.
const maxMembers = 7

// EmbeddedEtcd is an etcd member inside this process.
type EmbeddedEtcd struct {
	srv       *embed.Etcd
	endpoint  string
	closeOnce sync.Once
}

// StartEtcd starts a single-member etcd with its data in dir, serving
// clients on clientAddr and peers on peerAddr (host:port, loopback for local
// use), as hoard dev runs it.
func StartEtcd(dir, clientAddr, peerAddr string) (*EmbeddedEtcd, error) {
	return StartEtcdMember(context.Background(), EtcdConfig{
		Name: "hoard-dev", Dir: dir, ListenClient: clientAddr, ListenPeer: peerAddr,
	})
}

// StartEtcdMember starts one member as cfg says and waits until it serves
// (it has joined a cluster with a leader), at most cfg.ReadyTimeout.
func StartEtcdMember(ctx context.Context, cfg EtcdConfig) (*EmbeddedEtcd, error) {
	ecfg, err := cfg.embedConfig()
	if err != nil {
		return nil, err
	}
	srv, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd %q: %w", cfg.Name, err)
	}
	timeout := cfg.ReadyTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-srv.Server.ReadyNotify():
	case err := <-srv.Err():
		srv.Close()
		return nil, fmt.Errorf("embedded etcd %q failed: %w", cfg.Name, err)
	case <-timer.C:
		srv.Close()
		return nil, fmt.Errorf("embedded etcd %q not ready within %v (peers of a new cluster must all start; initial cluster %s)",
			cfg.Name, timeout, ecfg.InitialCluster)
	case <-ctx.Done():
		srv.Close()
		return nil, ctx.Err()
	}
	return &EmbeddedEtcd{srv: srv, endpoint: ecfg.AdvertiseClientUrls[0].String()}, nil
}

// embedConfig checks cfg and turns it into etcd's configuration.
func (cfg EtcdConfig) embedConfig() (*embed.Config, error) {
	if cfg.Name == "" {
		return nil, errors.New("etcd: a member name is required (--name)")
	}
	if cfg.Dir == "" {
		return nil, errors.New("etcd: a data dir is required (--data-dir)")
	}
	lc, err := listenURL("client", cfg.ListenClient)
	if err != nil {
		return nil, err
	}
	lp, err := listenURL("peer", cfg.ListenPeer)
	if err != nil {
		return nil, err
	}
	ap, err := advertiseURL("peer", cmp.Or(cfg.AdvertisePeer, selfPeerURL(cfg.InitialCluster, cfg.Name)), lp)
	if err != nil {
		return nil, err
	}
	advClient := cfg.AdvertiseClient
	if advClient == "" && ap.Host != lp.Host {
		advClient = "http://" + net.JoinHostPort(ap.Hostname(), lc.Port())
	}
	ac, err := advertiseURL("client", advClient, lc)
	if err != nil {
		return nil, err
	}
	e := embed.NewConfig()
	e.Name, e.Dir = cfg.Name, cfg.Dir
	e.ListenClientUrls, e.AdvertiseClientUrls = []url.URL{lc}, []url.URL{ac}
	e.ListenPeerUrls, e.AdvertisePeerUrls = []url.URL{lp}, []url.URL{ap}
	e.InitialCluster = cfg.Name + "=" + ap.String()
	if cfg.InitialCluster != "" {
		if err := checkInitialCluster(cfg.InitialCluster, cfg.Name, ap.String()); err != nil {
			return nil, err
		}
		e.InitialCluster = cfg.InitialCluster
	}
	if cfg.ClusterToken != "" {
		e.InitialClusterToken = cfg.ClusterToken
	}
	if cfg.Existing {
		e.ClusterState = embed.ClusterStateFlagExisting
	}
	if cfg.QuotaBytes < 0 {
		return nil, errors.New("etcd: the backend quota must not be negative (--quota)")
	}
	e.QuotaBackendBytes = cfg.QuotaBytes
	e.LogLevel = "error"
	if cfg.LogLevel != "" {
		e.LogLevel = cfg.LogLevel
	}
	// Keep the history small: membership keys change on every worker
	// restart, and nothing needs old revisions.
	e.AutoCompactionMode = "revision"
	e.AutoCompactionRetention = "1000"
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("etcd member %q: %w", cfg.Name, err)
	}
	return e, nil
}

// listenURL turns host:port into http://host:port.
func listenURL(what, addr string) (url.URL, error) {
	if addr == "" || strings.Contains(addr, "://") {
		return url.URL{}, fmt.Errorf("etcd: the %s listen address %q: want host:port, e.g. 0.0.0.0:2379", what, addr)
	}
	return url.URL{Scheme: "http", Host: addr}, nil
}

// advertiseURL parses an advertised URL; empty means the listen URL, which
// must then name a host others can reach.
func advertiseURL(what, s string, listen url.URL) (url.URL, error) {
	if s == "" {
		if h := listen.Hostname(); h == "0.0.0.0" || h == "::" || h == "" {
			return url.URL{}, fmt.Errorf("etcd: listening on %s, the %s URL to advertise must be given (--advertise-%s-url)",
				listen.Host, what, what)
		}
		return listen, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return url.URL{}, fmt.Errorf("etcd: the advertised %s URL %q: want http://host:port", what, s)
	}
	u.Path = ""
	return *u, nil
}

// selfPeerURL is name's URL in the initial cluster name=url,..., or "".
func selfPeerURL(initial, name string) string {
	for _, p := range strings.Split(initial, ",") {
		if n, u, ok := strings.Cut(strings.TrimSpace(p), "="); ok && n == name {
			return u
		}
	}
	return ""
}

// checkInitialCluster checks name=url,... : names unique, URLs of the form
// http://host:port, at most maxMembers, and this member in it with its own
// advertised peer URL.
func checkInitialCluster(s, self, selfPeer string) error {
	parts := strings.Split(s, ",")
	if len(parts) > maxMembers {
		return fmt.Errorf("etcd: the initial cluster has %d members; at most %d", len(parts), maxMembers)
	}
	seen := map[string]bool{}
	found := false
	for _, p := range parts {
		name, raw, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || name == "" {
			return fmt.Errorf("etcd: initial cluster entry %q: want name=http://host:port", p)
		}
		if seen[name] {
			return fmt.Errorf("etcd: initial cluster names %q twice", name)
		}
		seen[name] = true
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "http" || u.Host == "" || u.Port() == "" {
			return fmt.Errorf("etcd: initial cluster entry %q: want name=http://host:port", p)
		}
		if name == self {
			if strings.TrimSuffix(raw, "/") != selfPeer {
				return fmt.Errorf("etcd: the initial cluster gives %s the peer URL %s, but it advertises %s", name, raw, selfPeer)
			}
			found = true
		}
	}
	if !found {
		return fmt.Errorf("etcd: this member (%s) is not in the initial cluster %s", self, s)
	}
	return nil
}

// Endpoint is the advertised client URL.
func (e *EmbeddedEtcd) Endpoint() string { return e.endpoint }

// Err reports a fatal error of the running member (its channel is closed on
// Close).
func (e *EmbeddedEtcd) Err() <-chan error { return e.srv.Err() }

// Close stops etcd; later calls do nothing.
func (e *EmbeddedEtcd) Close() { e.closeOnce.Do(e.srv.Close) }
