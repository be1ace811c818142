package metrics

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Desc is the Prometheus descriptor of id, with constant labels (which must
// not be among its variable ones).
func (id ID) Desc(constLabels prometheus.Labels) *prometheus.Desc {
	d := table[id]
	return prometheus.NewDesc(d.Name, d.Help, d.Labels, constLabels)
}

// Set is the descriptors of some metrics, for a collector that computes
// them at scrape time from counters it reads.
type Set struct {
	descs map[ID]*prometheus.Desc
}

// NewSet returns the descriptors of ids.
func NewSet(ids ...ID) *Set {
	s := &Set{descs: make(map[ID]*prometheus.Desc, len(ids))}
	for _, id := range ids {
		s.descs[id] = id.Desc(nil)
	}
	return s
}

// Describe sends every descriptor of the set (prometheus.Collector's
// Describe).
func (s *Set) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range s.descs {
		ch <- d
	}
}

// Emit returns an Emitter of the set's metrics onto ch (from a Collect).
func (s *Set) Emit(ch chan<- prometheus.Metric) Emitter { return Emitter{s: s, ch: ch} }

// Emitter sends metric values during one Collect.
type Emitter struct {
	s  *Set
	ch chan<- prometheus.Metric
}

// Value sends a counter's or a gauge's value, with its label values in the
// order of the definition's labels.
func (e Emitter) Value(id ID, v int64, labelValues ...string) {
	e.Float(id, float64(v), labelValues...)
}

// Float is Value for a float.
func (e Emitter) Float(id ID, v float64, labelValues ...string) {
	vt := prometheus.GaugeValue
	if table[id].Type == Counter {
		vt = prometheus.CounterValue
	}
	e.ch <- prometheus.MustNewConstMetric(e.desc(id), vt, v, labelValues...)
}

// Histogram sends the sum of hs (one or more) as the histogram id.
func (e Emitter) Histogram(id ID, hs []*Latency, labelValues ...string) {
	var (
		count   uint64
		sum     float64
		buckets map[float64]uint64
	)
	for _, h := range hs {
		c, s, b := h.Snapshot()
		count, sum = count+c, sum+s
		if buckets == nil {
			buckets = b
			continue
		}
		for le, n := range b {
			buckets[le] += n
		}
	}
	e.ch <- prometheus.MustNewConstHistogram(e.desc(id), count, sum, buckets, labelValues...)
}

func (e Emitter) desc(id ID) *prometheus.Desc {
	d, ok := e.s.descs[id]
	if !ok {
		panic(fmt.Sprintf("metrics: %s is not in the collector's set", table[id].Name))
	}
	return d
}

// NewHistogramVec returns a histogram of id over LatencyBuckets, for calls
// that are not on a data path (a label lookup per observation).
func NewHistogramVec(id ID) *prometheus.HistogramVec {
	d := table[id]
	if d.Type != Histogram {
		panic(fmt.Sprintf("metrics: %s is a %s, not a histogram", d.Name, d.Type))
	}
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: d.Name, Help: d.Help, Buckets: LatencyBuckets(),
	}, d.Labels)
}

// NewGaugeFunc returns the gauge id, valued f() at each scrape.
func NewGaugeFunc(id ID, f func() float64) prometheus.GaugeFunc {
	d := table[id]
	if d.Type != Gauge || len(d.Labels) > 0 {
		panic(fmt.Sprintf("metrics: %s is not a gauge without labels", d.Name))
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: d.Name, Help: d.Help}, f)
}

// NewRegistry returns a registry for one process: Go runtime and process
// metrics, and hoard_build_info for role.
func NewRegistry(role, version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.MustNewConstMetric(BuildInfo.Desc(nil), prometheus.GaugeValue, 1, version, role)
	reg.MustRegister(constCollector{info})
	return reg
}

// constCollector always reports the same metric.
type constCollector struct{ m prometheus.Metric }

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.Desc() }
func (c constCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }

// Lookup returns the definition of the metric called name, or of the
// histogram a series name (name_bucket, _sum, _count) belongs to.
func Lookup(name string) (ID, bool) {
	for id := range ID(numIDs) {
		d := table[id]
		if d.Name == name {
			return id, true
		}
		if d.Type == Histogram {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && base == d.Name {
					return id, true
				}
			}
		}
	}
	return 0, false
}
