// Package faults is hoard's fault and load suite at the process level: a
// cache cluster of several nodes on one machine, each node a network and
// mount namespace of its own (tests/nodes) running a `hoard worker` and a
// `hoard mount` in cluster mode, three `hoard coordinator` members (etcd)
// on nodes of their own, and MinIO on a node of its own behind a counting,
// fault-injecting proxy on the host (testenv.CountingProxy), with mutual
// TLS between clients and workers.
//
// Each fault is a subtest of TestFaults that starts a fresh cache cluster
// (new cache dirs, a new cluster name in the coordinators), warms it, runs
// readers through the mounts of the nodes that are not faulted (16 readers
// of an epoch of small files on one, a sequential reader of large shards
// on another), injects the fault, heals it where it heals, and checks every
// byte read against the data set. Each reports a row: reads attempted,
// failed, wrong bytes, the longest read, the time until reads were served
// normally again. TestLoad runs 64 readers over small objects and 8 over
// large shards for a bounded time and samples every process's RSS and open
// files.
//
// Run with `make faults` (root; not part of `make test`): it sets
// HOARD_FAULTS=1, without which these tests skip, and
// HOARD_FAULTS_REPORT=docs/reliability.md, the file whose generated table
// the run rewrites. HOARD_FAULTS_SCALE (default 1) multiplies the data sets
// and durations; HOARD_FAULTS_SOAK=30m runs the load for that long.
//
// The nodes use the prefix "hft", the bridge "hft0" and 10.94.0.0/24, which
// no other suite uses, so the suite can run beside the e2e suites.
package faults
