package routing

import (
	"math"

	"hoard.dev/hoard/cachecore/objid"
)

// Scores.
//
// Each worker i has a seed s_i = xxhash64(ID_i). For a key k its hash is
// h_i = Mix64(k ^ s_i). It depends only on k and worker i, never on the other
// workers, so a key's ranking over a set of workers is the restriction of its
// ranking over any superset: adding a worker can only put it first, removing
// one only promotes the next in line. These movement invariants hold exactly,
// whatever the hash quality. Balance needs more: Mix64 is a bijection with
// full avalanche and the keys are themselves hash outputs, so for a fixed k the
// h_i of distinct workers behave as independent uniform 64-bit values
// (TestBalance compares with a truly random assignment).
//
// Weights (the logarithmic method of weighted rendezvous hashing): map h_i to
// u_i uniform in (0, 1) and score s_i = ln(u_i)/w_i, larger is better. Then
// -s_i = -ln(u_i)/w_i is exponentially distributed with rate w_i, and the
// smallest of independent exponentials is the one with rate w_i with
// probability w_i / sum(w): shares are exactly proportional to weight. (The
// same order as -w_i/ln(u_i), larger is better.) w_i is the weight divided by
// the largest weight, which changes no order (see relativeWeights).
//
// u_i = (top 52 bits of h_i + 0.5) / 2^52. With 52 bits the sum x + 0.5 is
// exact in a float64 (x < 2^52 needs 52 significant bits, the half one more),
// so u lies in [2^-53, 1 - 2^-53], strictly inside (0, 1): ln(u) is finite
// and negative. With the top 53 bits x + 0.5 would round, to 2^53 at the top,
// making u = 1 and ln(u) = 0 possible.
//
// Equal weights: ln is increasing and all w_i are equal, so the order of the
// scores is the order of the h_i (up to hashes that share their top 52 bits,
// probability ~2^-52 per pair). The table then compares h_i directly: no
// logarithm, about ten times cheaper.
//
// Both cases are reduced to one unsigned rank, larger is better: h_i itself,
// or for a weighted score (always negative, possibly -Inf for extreme weight
// ratios) the complement of its IEEE-754 bits: for negative floats a larger
// value has a smaller magnitude, so a larger complement. Equal ranks are
// broken by ID, the smaller ID first.

// rank returns worker i's rank for key; a larger rank is better.
func (t *Table) rank(key uint64, i int) uint64 {
	return t.rankOf(objid.Mix64(key^t.seeds[i]), i)
}

// rankOf returns worker i's rank given its hash h for the key. It is kept
// small enough to inline into the selection loop.
func (t *Table) rankOf(h uint64, i int) uint64 {
	if t.weights == nil {
		return h
	}
	return weightedRank(h, t.weights[i])
}

// weightedRank maps hash h and relative weight w to the rank of ln(u)/w.
func weightedRank(h uint64, w float64) uint64 {
	u := (float64(h>>12) + 0.5) * 0x1p-52
	return ^math.Float64bits(math.Log(u) / w)
}

// before reports whether worker i with rank ri comes before worker j with rank rj.
func (t *Table) before(ri uint64, i int, rj uint64, j int) bool {
	return ri > rj || ri == rj && t.workers[i].ID < t.workers[j].ID
}
