// Package server assembles a cache worker process: page store, worker,
// HTTP listener with metrics, and registration in the cluster's membership.
// It also runs an embedded etcd for local clusters (hoard dev).
//
// It owns process wiring only: what a worker does is in package worker, who is
// a member in package membership. It knows nothing of CSI or mounts.
package server
