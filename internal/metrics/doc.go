// Package metrics is the one definition of every metric hoard exports: its
// name, type, unit, labels and help, in one table (table.go), from which the
// Prometheus descriptors, the collectors' output and docs/metrics.md are all
// made. Code names a metric by its ID, never by spelling its name again.
//
// What flows in: counters that the code keeps next to what it counts (plain
// structs of atomics, such as worker.Stats or fuseview.Stats) and Histogram
// values for latencies. What flows out: Prometheus metrics, produced at
// scrape time by collectors (Set, Emitter) that read those counters, so the
// data path pays an atomic add per event and nothing for labels, maps or
// allocation; and Ops, the one HTTP handler of /healthz, /readyz and
// /metrics behind every process's --health-addr or --metrics-addr.
//
// It never keeps package-level mutable state (no default registry: each
// process builds its own), and never exports a metric that is not in the
// table.
package metrics
