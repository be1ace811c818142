package server

import (
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// EmbeddedEtcd is a single-member etcd inside this process, for a local
// cluster (hoard dev). Production clusters run etcd on their own.
type EmbeddedEtcd struct {
	srv      *embed.Etcd
	endpoint string
}

// StartEtcd starts etcd with its data in dir, serving clients on clientAddr
// and peers on peerAddr (host:port, loopback for local use).
func StartEtcd(dir, clientAddr, peerAddr string) (*EmbeddedEtcd, error) {
	cu := url.URL{Scheme: "http", Host: clientAddr}
	pu := url.URL{Scheme: "http", Host: peerAddr}
	cfg := embed.NewConfig()
	cfg.Name = "hoard-dev"
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{cu}
	cfg.AdvertiseClientUrls = []url.URL{cu}
	cfg.ListenPeerUrls = []url.URL{pu}
	cfg.AdvertisePeerUrls = []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-srv.Server.ReadyNotify():
	case err := <-srv.Err():
		srv.Close()
		return nil, fmt.Errorf("embedded etcd failed: %w", err)
	case <-time.After(30 * time.Second):
		srv.Close()
		return nil, fmt.Errorf("embedded etcd not ready within 30s")
	}
	return &EmbeddedEtcd{srv: srv, endpoint: cu.String()}, nil
}

// Endpoint is the client URL.
func (e *EmbeddedEtcd) Endpoint() string { return e.endpoint }

// Close stops etcd.
func (e *EmbeddedEtcd) Close() { e.srv.Close() }
