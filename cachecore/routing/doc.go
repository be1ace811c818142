// Package routing chooses, for a 64-bit key (objid.ID.ChunkHash of a chunk),
// an ordered list of workers: the owner first, then the order in which to fail
// over. A Table is built once from the current workers and asked per chunk read.
//
// # Algorithm
//
// Weighted rendezvous hashing (highest random weight, HRW) over stable worker
// IDs: every worker gets a score for the key, computed from the key and the
// worker's ID alone, and the workers sorted by score, best first, are the
// answer. See score.go for the math.
//
// # Invariants
//
//  1. Deterministic: the same set of workers (ID and weight), in any input
//     order, gives every key the same ordered list of worker IDs, in every
//     process. Ties in score are broken by ID.
//  2. Minimal movement: adding one worker moves only the keys it now owns, all
//     to it; removing one worker moves only the keys it owned. More generally,
//     removing a worker from the table removes it from every key's order and
//     leaves the rest of the order as it was, so failover to Order[1] sends a
//     key where it will live once the failed worker is dropped.
//  3. Proportional shares: a worker owns a share of the keys equal to its
//     weight over the sum of the weights, up to sampling noise.
//
// # What it never does
//
// No I/O, no membership (who is alive is the caller's business: it builds a
// new Table when the set changes), no locks and no mutable state: a Table is
// immutable once built and safe for concurrent use.
package routing
