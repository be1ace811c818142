package metrics

import (
	"sync/atomic"
	"time"
)

// latencyBounds are the histogram buckets' upper bounds (LatencyBuckets).
var latencyBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second, time.Minute,
}

// Latency counts durations in LatencyBuckets. It is a plain struct of
// atomics, kept next to what it times: Observe costs a few compares and two
// atomic adds, no allocation and no lock. Collectors turn it into a
// Prometheus histogram at scrape time (Emitter.Histogram). The zero value is
// ready.
type Latency struct {
	counts [len(latencyBounds) + 1]atomic.Uint64 // the last is +Inf
	sum    atomic.Int64                          // nanoseconds
}

// Observe records one duration.
func (h *Latency) Observe(d time.Duration) {
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Since records the time since start.
func (h *Latency) Since(start time.Time) { h.Observe(time.Since(start)) }

// Snapshot returns the count, the sum in seconds and the cumulative count per
// upper bound (seconds), as prometheus.MustNewConstHistogram takes them.
func (h *Latency) Snapshot() (count uint64, sum float64, buckets map[float64]uint64) {
	buckets = make(map[float64]uint64, len(latencyBounds))
	for i, b := range latencyBounds {
		count += h.counts[i].Load()
		buckets[b.Seconds()] = count
	}
	count += h.counts[len(latencyBounds)].Load()
	return count, time.Duration(h.sum.Load()).Seconds(), buckets
}

// Count is the number of observations.
func (h *Latency) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}
