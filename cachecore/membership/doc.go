// Package membership says who the cache workers are and which of them are alive.
//
// What flows in: workers announce themselves (Register) and operators retire
// them (Deregister). What flows out: a View — the registered workers, sorted by
// ID, and the subset that is alive — through a Source that clients poll
// (Current) and wait on (Changed). The package never routes, never touches
// cached data and knows nothing of CSI or FUSE; routing over a View is the
// caller's business.
//
// # Two tiers, as Alluxio DORA does it
//
//	/hoard/<cluster>/workers/<id>  registration: JSON {id, addr, weight, capacity_bytes}, no lease
//	/hoard/<cluster>/alive/<id>    liveness: empty value, attached to a lease of TTL seconds
//
// A worker writes both on start, overwriting its previous registration under
// the same stable ID, and keeps its lease alive. The registration outlives the
// process, so routing over the registered set stays stable across worker
// restarts; the liveness key disappears TTL after the worker stops renewing
// (or at once on a clean Close). A worker is alive in a View only if both keys
// exist. Deregister removes the registration when a worker is decommissioned.
//
// # When etcd is away
//
// The watcher keeps serving its last view: Current never waits on etcd. It
// follows both prefixes with one watch; when the watch breaks (compaction, lost
// leader, reconnect) it reads the whole prefix again and watches on from that
// revision. When the etcd client gives a lease up (no renewal answered within
// the TTL: etcd away, or this process or etcd starved of CPU), the worker
// first asks etcd to renew that same lease: if etcd still holds it, nothing
// changed for anyone and nothing is written. A worker whose lease is lost
// (TTL expired during an outage, etcd restarted) grants a new lease and
// writes both keys again, with backoff, for as long as it runs; it never
// gives up because etcd is down. The TTL (10 s by default) is what a busy
// node may go unheard before its worker's chunks move to others. State changes are
// logged once each (connection lost and restored, lease lost and renewed,
// worker up and down), never per retry.
//
// Without etcd (the embedded default) Static serves a fixed list, all alive.
package membership
