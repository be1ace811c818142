package server

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/worker"
	"hoard.dev/hoard/internal/metrics"
)

// WorkerCollector exports the metrics of the workers of one process (hoard
// dev runs several): worker, page store and lease counters, read at scrape
// time from their Stats, so the data path pays nothing for metrics.
type WorkerCollector struct {
	set *metrics.Set
	mu  struct {
		sync.Mutex
		workers []*Worker
	}
}

// NewWorkerCollector returns a collector of ws; Add adds more.
func NewWorkerCollector(ws ...*Worker) *WorkerCollector {
	c := &WorkerCollector{set: metrics.NewSet(
		metrics.WorkerRequests, metrics.WorkerServedBytes, metrics.WorkerPageHits, metrics.WorkerPageMisses,
		metrics.WorkerBucketRequests, metrics.WorkerBucketErrors, metrics.WorkerBucketRefusals, metrics.WorkerRefusalRetries, metrics.WorkerFetchedBytes,
		metrics.WorkerListCacheHits, metrics.WorkerStoreChecksumMismatches, metrics.WorkerAuthChecks, metrics.WorkerAuthGraced,
		metrics.PagestoreUsedBytes, metrics.PagestoreCapacityBytes,
		metrics.PagestorePages, metrics.PagestoreEvictions, metrics.PagestoreCorruptPages,
		metrics.PagestoreDegraded, metrics.PagestoreDiskErrors, metrics.PagestoreBypassed,
		metrics.MembershipLeaseRenewals, metrics.MembershipLeaseLapses,
	)}
	c.mu.workers = ws
	return c
}

// Add adds a worker to those exported.
func (c *WorkerCollector) Add(w *Worker) {
	c.mu.Lock()
	c.mu.workers = append(c.mu.workers, w)
	c.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (c *WorkerCollector) Describe(ch chan<- *prometheus.Desc) { c.set.Describe(ch) }

// Collect implements prometheus.Collector.
func (c *WorkerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	ws := append([]*Worker(nil), c.mu.workers...)
	c.mu.Unlock()
	e := c.set.Emit(ch)
	for _, w := range ws {
		collectWorker(e, w)
	}
}

func collectWorker(e metrics.Emitter, s *Worker) {
	id := s.Worker.ID()
	ws := s.Worker.Stats()
	ss := s.Store.Stats()
	used, pages := s.Store.Usage()
	e.Value(metrics.WorkerRequests, ws.Requests.Load(), id)
	e.Value(metrics.WorkerServedBytes, ws.BytesServed.Load(), id)
	e.Value(metrics.WorkerPageHits, ws.PageHits.Load(), id)
	e.Value(metrics.WorkerPageMisses, ws.PageMisses.Load(), id)
	e.Value(metrics.WorkerBucketRequests, ws.Fetches.Load(), id, metrics.OpGet)
	e.Value(metrics.WorkerBucketRequests, ws.Lists.Load()+ws.ListErrors.Load(), id, metrics.OpList)
	e.Value(metrics.WorkerBucketErrors, ws.FetchErrors.Load(), id, metrics.OpGet)
	e.Value(metrics.WorkerBucketErrors, ws.ListErrors.Load(), id, metrics.OpList)
	for r := range worker.NumRefusals {
		e.Value(metrics.WorkerBucketRefusals, ws.FetchRefused[r].Load(), id, r.String())
	}
	e.Value(metrics.WorkerRefusalRetries, ws.RefusalRetries.Load(), id)
	e.Value(metrics.WorkerFetchedBytes, ws.FetchedBytes.Load(), id)
	e.Value(metrics.WorkerListCacheHits, ws.ListHits.Load(), id)
	e.Value(metrics.WorkerStoreChecksumMismatches, ws.StoreChecksumErrors.Load(), id)
	e.Value(metrics.WorkerAuthChecks, ws.AuthChecks.Load(), id)
	e.Value(metrics.WorkerAuthGraced, ws.AuthGraced.Load(), id)
	e.Value(metrics.PagestoreUsedBytes, used, id)
	e.Value(metrics.PagestoreCapacityBytes, s.Store.Budget(), id)
	e.Value(metrics.PagestorePages, int64(pages), id)
	e.Value(metrics.PagestoreEvictions, ss.Evictions.Load(), id)
	e.Value(metrics.PagestoreCorruptPages, ss.Corrupt.Load(), id)
	fault := s.Store.Health().Fault
	for _, f := range pagestore.Faults() {
		v := int64(0)
		if f == fault {
			v = 1
		}
		e.Value(metrics.PagestoreDegraded, v, id, f.String())
	}
	e.Value(metrics.PagestoreDiskErrors, ss.ReadErrors.Load(), id, metrics.OpRead)
	e.Value(metrics.PagestoreDiskErrors, ss.WriteErrors.Load(), id, metrics.OpWrite)
	e.Value(metrics.PagestoreBypassed, ss.Bypassed.Load(), id)
	var renewals, lapses int64
	if reg := s.reg.Load(); reg != nil {
		renewals, lapses = reg.Stats().Renewals.Load(), reg.Stats().Lapses.Load()
	}
	e.Value(metrics.MembershipLeaseRenewals, renewals, id)
	e.Value(metrics.MembershipLeaseLapses, lapses, id)
}
