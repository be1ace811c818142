// Package status is what `hoard status` reports: the cache cluster's
// coordinator and workers (alive, fill, hit ratio, share of the ring), the
// volumes the node's mounter serves with their traffic by source, and a
// verdict: ok, degraded or down, with every problem that made it so.
//
// What flows in: an etcd configuration (optional) and a mounter socket
// (optional; its answer also names the cluster the node reads through).
// What flows out: a Report. It only reads: it never changes membership,
// mounts or caches.
package status

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"time"

	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/mtls"
	"hoard.dev/hoard/cachecore/routing"
	"hoard.dev/hoard/cachecore/worker"
	"hoard.dev/hoard/node/mounter"
)

// States of a Report.
const (
	OK       = "ok"       // everything answers and the cache serves every read
	Degraded = "degraded" // reads work, but something is down or bypassing the cache
	Down     = "down"     // the cache cluster cannot serve: no live worker
)

// Report is the state of the cluster and of this node.
type Report struct {
	State    string    `json:"state"`
	Problems []string  `json:"problems"`
	Time     time.Time `json:"time"`
	// Coordinator is nil when no cluster was asked (no etcd).
	Coordinator *Coordinator `json:"coordinator,omitempty"`
	Workers     []Worker     `json:"workers"`
	// Node is nil when no mounter was asked.
	Node *Node `json:"node,omitempty"`
}

// Coordinator is the cluster's etcd as seen from here.
type Coordinator struct {
	Cluster   string                      `json:"cluster"`
	Healthy   bool                        `json:"healthy"`
	Endpoints []membership.EndpointStatus `json:"endpoints"`
}

// Worker is one cache worker: its registration, liveness and what it
// reports of itself.
type Worker struct {
	ID        string `json:"id"`
	Addr      string `json:"addr"`
	Alive     bool   `json:"alive"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// RingShare is the fraction of chunks the worker owns among the live
	// workers (0 when not alive).
	RingShare     float64  `json:"ring_share"`
	UsedBytes     int64    `json:"used_bytes"`
	CapacityBytes int64    `json:"capacity_bytes"`
	Pages         int      `json:"pages"`
	HitRatio      *float64 `json:"hit_ratio"` // nil before any page was asked for
	PageHits      int64    `json:"page_hits"`
	PageMisses    int64    `json:"page_misses"`
	ServedBytes   int64    `json:"served_bytes"`
	FetchedBytes  int64    `json:"fetched_bytes"`
	Errors        int64    `json:"errors"` // failed fetches and corrupt pages
	Evictions     int64    `json:"evictions"`
}

// Node is the node's mounter and the volumes it serves.
type Node struct {
	MounterSocket string   `json:"mounter_socket"`
	Reachable     bool     `json:"reachable"`
	Error         string   `json:"error,omitempty"`
	Version       string   `json:"version,omitempty"`
	PID           int      `json:"pid,omitempty"`
	Cache         string   `json:"cache,omitempty"` // "cluster NAME" or "embedded"
	Volumes       []Volume `json:"volumes"`
}

// Volume is one staged volume and what its readers read.
type Volume struct {
	VolumeID    string    `json:"volume_id"`
	Source      string    `json:"source"`
	Backend     string    `json:"backend"`
	StagingPath string    `json:"staging_path"`
	Started     time.Time `json:"started"`
	// ReadBytes maps each source (memory, worker, bucket) to the bytes
	// read from it.
	ReadBytes     map[string]int64 `json:"read_bytes"`
	BypassedBytes int64            `json:"bypassed_bytes"`
	LastBypass    *time.Time       `json:"last_bypass,omitempty"`
	BypassCause   string           `json:"bypass_cause,omitempty"`
	// Bypassing is true when the cache was bypassed within the window.
	Bypassing bool  `json:"bypassing"`
	Failovers int64 `json:"failovers"`
	Errors    int64 `json:"errors"`
}

// Options say what to ask.
type Options struct {
	// Etcd is the cluster to report on; without endpoints, the one the
	// mounter names (if any).
	Etcd membership.EtcdConfig
	// MounterSocket is the node's mounter; "" asks none.
	MounterSocket string
	// BypassWindow: a volume that bypassed the cache within it makes the
	// report degraded (default 5 minutes).
	BypassWindow time.Duration
	// Timeout bounds each request (default 5 s).
	Timeout time.Duration
	// TLS, if set, is the client side of the workers' mutual TLS (https);
	// otherwise workers are asked over plain HTTP (--insecure-dev clusters).
	TLS *tls.Config
	// HTTP asks workers for their status (default: a client with Timeout
	// and TLS).
	HTTP *http.Client
}

// Gather asks the mounter and the cluster and judges their state.
func Gather(ctx context.Context, opt Options) *Report {
	if opt.BypassWindow <= 0 {
		opt.BypassWindow = 5 * time.Minute
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	r := &Report{Time: time.Now().UTC(), Workers: []Worker{}, Problems: []string{}}
	var embedded *worker.Status
	if opt.MounterSocket != "" {
		var cache *mounter.CacheInfo
		r.Node, cache = node(ctx, opt)
		if cache != nil && len(opt.Etcd.Endpoints) == 0 && len(cache.Etcd) > 0 {
			opt.Etcd.Endpoints, opt.Etcd.Cluster = cache.Etcd, cache.Cluster
		}
		if cache != nil {
			embedded = cache.Embedded
			opt.TLS = mounterTLS(r.Node, cache, opt.TLS)
		}
	}
	if opt.HTTP == nil {
		opt.HTTP = &http.Client{Timeout: opt.Timeout, Transport: &http.Transport{TLSClientConfig: opt.TLS}}
	}
	switch {
	case len(opt.Etcd.Endpoints) > 0:
		r.cluster(ctx, opt)
	case embedded != nil:
		r.Workers = append(r.Workers, fromStatus(membership.Member{ID: embedded.ID, Addr: "embedded"}, *embedded, 1))
	}
	r.judge()
	return r
}

// mounterTLS is the client side of the workers' mutual TLS: the one given,
// else the mounter's own certificate files (status runs beside it, in its
// pod), which a failure to load notes on n.
func mounterTLS(n *Node, cache *mounter.CacheInfo, given *tls.Config) *tls.Config {
	if given != nil || cache.TLSFiles == nil {
		return given
	}
	f := mtls.Files{CA: cache.TLSFiles.CA, Cert: cache.TLSFiles.Cert, Key: cache.TLSFiles.Key}
	cfg, err := f.ClientConfig()
	if err != nil {
		n.Error = fmt.Sprintf("the mounter's client certificate (give --tls-ca, --tls-cert, --tls-key): %v", err)
		return nil
	}
	return cfg
}

// node asks the mounter for its sessions.
func node(ctx context.Context, opt Options) (*Node, *mounter.CacheInfo) {
	n := &Node{MounterSocket: opt.MounterSocket, Volumes: []Volume{}}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	resp, err := (&mounter.Client{Socket: opt.MounterSocket}).List(ctx)
	if err != nil {
		n.Error = err.Error()
		return n, nil
	}
	n.Reachable, n.Version, n.PID = true, resp.Version, resp.PID
	if c := resp.Cache; c != nil {
		n.Cache = "cluster " + c.Cluster
		if c.Embedded != nil {
			n.Cache = "embedded"
		}
	}
	for _, s := range resp.Sessions {
		v := Volume{VolumeID: s.VolumeID, Source: s.Source, Backend: s.Backend, StagingPath: s.StagingPath,
			Started: s.Started, ReadBytes: map[string]int64{}}
		if t := s.Traffic; t != nil {
			v.ReadBytes, v.BypassedBytes, v.LastBypass, v.BypassCause = t.ReadBytes, t.BypassedBytes, t.LastBypass, t.BypassCause
			v.Failovers, v.Errors = t.Failovers, t.Errors
			v.Bypassing = t.LastBypass != nil && time.Since(*t.LastBypass) < opt.BypassWindow
		}
		n.Volumes = append(n.Volumes, v)
	}
	return n, resp.Cache
}

// cluster reads the membership and every worker's status.
func (r *Report) cluster(ctx context.Context, opt Options) {
	r.Coordinator = &Coordinator{Cluster: opt.Etcd.Cluster, Endpoints: []membership.EndpointStatus{}}
	wctx, cancel := context.WithTimeout(ctx, 2*opt.Timeout)
	w, err := membership.Watch(wctx, opt.Etcd)
	cancel()
	if err != nil {
		for _, ep := range opt.Etcd.Endpoints {
			r.Coordinator.Endpoints = append(r.Coordinator.Endpoints, membership.EndpointStatus{Endpoint: ep, Error: err.Error()})
		}
		return
	}
	defer w.Close()
	r.Coordinator.Endpoints = w.Health(ctx, opt.Timeout)
	for _, ep := range r.Coordinator.Endpoints {
		r.Coordinator.Healthy = r.Coordinator.Healthy || ep.Healthy
	}
	view := w.Current()
	shares := ringShares(view)
	for _, m := range view.Registered {
		st, err := workerStatus(ctx, opt.HTTP, opt.TLS != nil, m)
		if err != nil {
			r.Workers = append(r.Workers, Worker{ID: m.ID, Addr: m.Addr, Alive: view.Alive[m.ID], Error: err.Error(),
				RingShare: shares[m.ID], CapacityBytes: m.Capacity})
			continue
		}
		wk := fromStatus(m, st, shares[m.ID])
		wk.Alive = view.Alive[m.ID]
		r.Workers = append(r.Workers, wk)
	}
}

func fromStatus(m membership.Member, st worker.Status, share float64) Worker {
	w := Worker{ID: m.ID, Addr: m.Addr, Alive: true, Reachable: true, RingShare: share,
		UsedBytes: st.UsedBytes, CapacityBytes: st.BudgetBytes, Pages: st.Pages, ServedBytes: st.ServedBytes,
		FetchedBytes: st.FetchedBytes, Errors: st.FetchErrors + st.Corrupt, Evictions: st.Evictions,
		PageHits: st.PageHits, PageMisses: st.PageMisses}
	if n := st.PageHits + st.PageMisses; n > 0 {
		h := float64(st.PageHits) / float64(n)
		w.HitRatio = &h
	}
	return w
}

func workerStatus(ctx context.Context, hc *http.Client, secure bool, m membership.Member) (worker.Status, error) {
	var st worker.Status
	scheme := "http://"
	if secure {
		scheme = "https://"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+m.Addr+worker.StatusPath, nil)
	if err != nil {
		return st, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatusBytes)).Decode(&st); err != nil {
		return st, fmt.Errorf("status of worker %s: %w", m.ID, err)
	}
	return st, nil
}

// maxStatusBytes bounds a worker's status answer (a few hundred bytes).
const maxStatusBytes = 1 << 20

// ringSamples is how many chunk hashes ringShares routes: the shares are
// within about half a percent of the exact ones.
const ringSamples = 1 << 15

// ringShares is the fraction of chunks each live worker owns, measured by
// routing sample hashes the way clients do (weighted rendezvous over the
// live workers).
func ringShares(v membership.View) map[string]float64 {
	var live []routing.Worker
	for _, m := range v.Registered {
		if v.Alive[m.ID] {
			live = append(live, routing.Worker{ID: m.ID, Weight: m.Weight})
		}
	}
	shares := map[string]float64{}
	t, err := routing.New(live)
	if err != nil || t.Len() == 0 {
		return shares
	}
	counts := make([]int, t.Len())
	x := uint64(0x9e3779b97f4a7c15)
	for range ringSamples {
		x += 0x9e3779b97f4a7c15 // splitmix64
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		counts[t.Owner(z^(z>>31))]++
	}
	for i, w := range t.Workers() {
		shares[w.ID] = float64(counts[i]) / ringSamples
	}
	return shares
}

// judge sets State and Problems.
func (r *Report) judge() {
	p := []string{} // [] in JSON, not null
	down := false
	if c := r.Coordinator; c != nil {
		if !c.Healthy {
			for _, ep := range c.Endpoints {
				why := ep.Error
				if why == "" && !ep.HasLeader {
					why = "no leader (no quorum)"
				}
				if why == "" && len(ep.Alarms) > 0 {
					why = fmt.Sprintf("alarms %v", ep.Alarms)
				}
				p = append(p, fmt.Sprintf("coordinator %s: %s", ep.Endpoint, why))
			}
		}
		alive := 0
		for _, w := range r.Workers {
			switch {
			case !w.Alive:
				p = append(p, fmt.Sprintf("worker %s (%s) is registered but not alive: its chunks go to the next workers", w.ID, w.Addr))
			case !w.Reachable:
				p = append(p, fmt.Sprintf("worker %s (%s) is alive but does not answer: %s", w.ID, w.Addr, w.Error))
			}
			if w.Alive {
				alive++
			}
		}
		if c.Healthy && alive == 0 {
			down = true
			p = append(p, fmt.Sprintf("cluster %q has no live worker: every read goes to the buckets directly", c.Cluster))
		}
	}
	if n := r.Node; n != nil {
		if !n.Reachable {
			p = append(p, fmt.Sprintf("the mounter at %s does not answer: %s", n.MounterSocket, n.Error))
		}
		for _, v := range n.Volumes {
			if v.Bypassing {
				p = append(p, fmt.Sprintf("volume %s bypasses the cache (%d bytes so far, last at %s): %s",
					v.VolumeID, v.BypassedBytes, v.LastBypass.Format(time.RFC3339), v.BypassCause))
			}
		}
	}
	r.Problems = p
	switch {
	case down:
		r.State = Down
	case len(p) > 0:
		r.State = Degraded
	default:
		r.State = OK
	}
	sort.SliceStable(r.Workers, func(i, j int) bool { return r.Workers[i].ID < r.Workers[j].ID })
	if r.Node != nil {
		slices.SortFunc(r.Node.Volumes, func(a, b Volume) int { return a.Started.Compare(b.Started) })
	}
}

// DefaultSocket is the mounter socket status asks when it exists.
func DefaultSocket() string {
	if _, err := os.Stat(mounter.DefaultSocket); err != nil && errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return mounter.DefaultSocket
}
