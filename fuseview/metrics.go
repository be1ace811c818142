package fuseview

import (
	"github.com/prometheus/client_golang/prometheus"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/internal/metrics"
)

// Volume is one served tree as metrics show it: its name (the volume label)
// and its counters.
type Volume struct {
	Name  string
	View  *Stats            // the tree's (Root.Stats)
	Reads *client.ReadStats // its readers' (client.Client.Counted)
}

// Collector exports the mount metrics (hoard_mount_*) of the volumes a
// process serves, read at scrape time. Trees of the same name (a volume
// served twice while its old session drains) are summed.
type Collector struct {
	volumes func() []Volume
	set     *metrics.Set
}

// NewCollector returns a collector of the volumes volumes lists at each
// scrape.
func NewCollector(volumes func() []Volume) *Collector {
	return &Collector{volumes: volumes, set: metrics.NewSet(
		metrics.MountVolumes, metrics.MountReadBytes, metrics.MountBypassedBytes, metrics.MountFailovers,
		metrics.MountReadaheadBytes, metrics.MountFuseOpDuration, metrics.MountMetadataLookups,
		metrics.MountMetadataBucketRequests, metrics.MountErrors,
	)}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { c.set.Describe(ch) }

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	byName := map[string][]Volume{}
	var names []string
	for _, v := range c.volumes() {
		if _, ok := byName[v.Name]; !ok {
			names = append(names, v.Name)
		}
		byName[v.Name] = append(byName[v.Name], v)
	}
	e := c.set.Emit(ch)
	e.Value(metrics.MountVolumes, int64(len(names)))
	for _, name := range names {
		collectVolume(e, name, byName[name])
	}
}

func collectVolume(e metrics.Emitter, name string, vs []Volume) {
	sum := func(f func(Volume) int64) int64 {
		var n int64
		for _, v := range vs {
			n += f(v)
		}
		return n
	}
	for src := client.Source(0); src < client.NumSources; src++ {
		e.Value(metrics.MountReadBytes, sum(func(v Volume) int64 { return v.Reads.Bytes(src) }), name, src.String())
	}
	e.Value(metrics.MountBypassedBytes, sum(func(v Volume) int64 { return v.Reads.Bypassed.Load() }), name)
	e.Value(metrics.MountFailovers, sum(func(v Volume) int64 { return v.Reads.Failovers.Load() }), name)
	e.Value(metrics.MountReadaheadBytes, sum(func(v Volume) int64 { return v.Reads.Readahead.Load() }), name)
	for op := Op(0); op < NumOps; op++ {
		hs := make([]*metrics.Latency, len(vs))
		for i, v := range vs {
			hs[i] = &v.View.Latency[op]
		}
		e.Histogram(metrics.MountFuseOpDuration, hs, name, op.String())
	}
	e.Value(metrics.MountMetadataLookups, sum(func(v Volume) int64 { return v.View.CacheHits.Load() }), name, metrics.ResultHit)
	e.Value(metrics.MountMetadataLookups, sum(func(v Volume) int64 { return v.View.CacheMisses.Load() }), name, metrics.ResultMiss)
	e.Value(metrics.MountMetadataBucketRequests, sum(func(v Volume) int64 { return v.View.Heads.Load() }), name, metrics.OpHead)
	e.Value(metrics.MountMetadataBucketRequests, sum(func(v Volume) int64 { return v.View.ListPages.Load() }), name, metrics.OpList)
	for k := ErrorKind(0); k < NumErrorKinds; k++ {
		e.Value(metrics.MountErrors, sum(func(v Volume) int64 { return v.View.ErrorsByKind[k].Load() }), name, k.String())
	}
}
