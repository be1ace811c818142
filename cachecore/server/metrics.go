package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"hoard.dev/hoard/cachecore/worker"
)

// collector exports a worker's and its page store's counters. It reads the
// atomic counters at scrape time, so the data path pays nothing for metrics.
type collector struct {
	w     *worker.Worker
	descs map[string]*prometheus.Desc
}

var counterHelp = map[string]string{
	"hoard_worker_requests_total":      "Range reads served.",
	"hoard_worker_served_bytes_total":  "Bytes sent to clients.",
	"hoard_worker_page_hits_total":     "Pages served from the page store.",
	"hoard_worker_page_misses_total":   "Pages that had to come from the bucket.",
	"hoard_worker_fetches_total":       "Ranged GETs to buckets.",
	"hoard_worker_fetched_bytes_total": "Bytes read from buckets.",
	"hoard_worker_fetch_errors_total":  "Ranged GETs that failed.",
	"hoard_pagestore_corrupt_total":    "Pages dropped because their checksum failed.",
	"hoard_pagestore_evictions_total":  "Pages evicted to stay within capacity.",
	"hoard_pagestore_used_bytes":       "Disk bytes held by cached pages.",
	"hoard_pagestore_budget_bytes":     "Disk bytes the page store may use for pages.",
	"hoard_pagestore_pages":            "Pages cached.",
}

func newCollector(w *worker.Worker) *collector {
	c := &collector{w: w, descs: make(map[string]*prometheus.Desc)}
	for name, help := range counterHelp {
		c.descs[name] = prometheus.NewDesc(name, help, nil, prometheus.Labels{"worker": w.ID()})
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ws := c.w.Stats()
	ss := c.w.Store().Stats()
	used, pages := c.w.Store().Usage()
	counter := func(name string, v int64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v))
	}
	gauge := func(name string, v int64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, float64(v))
	}
	counter("hoard_worker_requests_total", ws.Requests.Load())
	counter("hoard_worker_served_bytes_total", ws.BytesServed.Load())
	counter("hoard_worker_page_hits_total", ws.PageHits.Load())
	counter("hoard_worker_page_misses_total", ws.PageMisses.Load())
	counter("hoard_worker_fetches_total", ws.Fetches.Load())
	counter("hoard_worker_fetched_bytes_total", ws.FetchedBytes.Load())
	counter("hoard_worker_fetch_errors_total", ws.FetchErrors.Load())
	counter("hoard_pagestore_corrupt_total", ss.Corrupt.Load())
	counter("hoard_pagestore_evictions_total", ss.Evictions.Load())
	gauge("hoard_pagestore_used_bytes", used)
	gauge("hoard_pagestore_budget_bytes", c.w.Store().Budget())
	gauge("hoard_pagestore_pages", int64(pages))
}
