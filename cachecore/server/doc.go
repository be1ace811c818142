// Package server assembles hoard processes from the cache core: a worker
// process (page store, worker, HTTP listener with metrics, registration in
// the cluster's membership), a cache client (through a cluster watched in
// etcd, or with a worker embedded in the process), and an embedded etcd for
// local clusters (hoard dev).
//
// It owns process wiring only: what a worker does is in package worker, who
// is a member in package membership, how reads are routed in package client.
// It knows nothing of CSI or mounts.
package server
