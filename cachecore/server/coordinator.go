package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/internal/metrics"
)

// CoordinatorCollector exports what a coordinator sees of its cache
// cluster: the workers registered and alive, their lease lapses, and the
// health of its etcd (asked at scrape time, at most 2 s).
type CoordinatorCollector struct {
	w   *membership.EtcdWatcher
	set *metrics.Set
}

// NewCoordinatorCollector returns a collector over w, a watcher of the
// cluster on the coordinator's own etcd endpoint.
func NewCoordinatorCollector(w *membership.EtcdWatcher) *CoordinatorCollector {
	return &CoordinatorCollector{w: w, set: metrics.NewSet(
		metrics.ClusterWorkers, metrics.ClusterWorkerLapses, metrics.CoordinatorUp,
		metrics.CoordinatorHasLeader, metrics.CoordinatorDBBytes,
	)}
}

// Describe implements prometheus.Collector.
func (c *CoordinatorCollector) Describe(ch chan<- *prometheus.Desc) { c.set.Describe(ch) }

// Collect implements prometheus.Collector.
func (c *CoordinatorCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.set.Emit(ch)
	v := c.w.Current()
	e.Value(metrics.ClusterWorkers, int64(len(v.Registered)), metrics.StateRegistered)
	e.Value(metrics.ClusterWorkers, int64(len(v.Alive)), metrics.StateAlive)
	e.Value(metrics.ClusterWorkerLapses, c.w.Lapses())
	var up, leader, db int64
	for _, st := range c.w.Health(context.Background(), 2*time.Second) {
		if st.Error == "" {
			up = 1
		}
		if st.HasLeader {
			leader = 1
		}
		db = max(db, st.DBBytes)
	}
	e.Value(metrics.CoordinatorUp, up)
	e.Value(metrics.CoordinatorHasLeader, leader)
	e.Value(metrics.CoordinatorDBBytes, db)
}
