// Package server assembles hoard processes from the cache core: a worker
// process (page store, worker, HTTP listener with metrics, registration in
// the cluster's membership), a cache client (through a cluster watched in
// etcd, or with a worker embedded in the process), and embedded etcd
// members (hoard coordinator: one member of a 1-, 3- or more-member
// cluster; hoard dev: a single local one).
//
// It owns process wiring only: what a worker does is in package worker, who
// is a member in package membership, how reads are routed in package client.
// It knows nothing of CSI or mounts.
package server
