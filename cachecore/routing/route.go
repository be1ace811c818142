package routing

import (
	"slices"
	"strings"

	"hoard.dev/hoard/cachecore/objid"
)

// maxSelect is the largest n for which Top selects in one pass with ranks held
// on the stack; beyond it Top sorts all workers.
const maxSelect = 32

// Owner returns the index of the worker that owns key, or -1 if the table is
// empty. It does not allocate.
func (t *Table) Owner(key uint64) int {
	switch {
	case len(t.seeds) == 0:
		return -1
	case t.weights == nil:
		return t.ownerEqual(key)
	}
	return t.ownerWeighted(key)
}

// ownerEqual is Owner for equal weights: the largest raw hash wins. The
// h >= bestH test in front of before is redundant but measurably faster: it
// keeps the common case (not better) to one comparison and jump.
func (t *Table) ownerEqual(key uint64) int {
	best, bestH := 0, objid.Mix64(key^t.seeds[0])
	for i, s := range t.seeds[1:] {
		if h := objid.Mix64(key ^ s); h >= bestH && t.before(h, i+1, bestH, best) {
			best, bestH = i+1, h
		}
	}
	return best
}

// ownerWeighted is Owner for unequal weights.
func (t *Table) ownerWeighted(key uint64) int {
	best, bestR := 0, weightedRank(objid.Mix64(key^t.seeds[0]), t.weights[0])
	for i, s := range t.seeds[1:] {
		r := weightedRank(objid.Mix64(key^s), t.weights[i+1])
		if r >= bestR && t.before(r, i+1, bestR, best) {
			best, bestR = i+1, r
		}
	}
	return best
}

// Order returns the indexes of all workers for key, best first: the owner,
// then the workers to fail over to, in order. It appends to dst[:0] and
// allocates only if cap(dst) < Len().
func (t *Table) Order(key uint64, dst []int) []int {
	return t.Top(key, len(t.seeds), dst)
}

// Top returns the indexes of the best n workers for key, best first; it equals
// Order(key, dst)[:n] (n is clamped to [0, Len()]). It appends to dst[:0]. For
// n <= 32 it selects in one pass over the workers and allocates only if
// cap(dst) < n; for larger n it sorts all workers like Order and allocates
// only if cap(dst) < Len().
func (t *Table) Top(key uint64, n int, dst []int) []int {
	n = max(0, min(n, len(t.seeds)))
	if n <= maxSelect {
		return t.selectTop(key, slices.Grow(dst[:0], n)[:n])
	}
	return t.sortAll(key, slices.Grow(dst[:0], len(t.seeds))[:len(t.seeds)])[:n]
}

// selectTop fills top (len(top) <= maxSelect) with the best len(top) workers,
// best first, by insertion. Once top is full only a worker whose rank reaches
// the last one's (least, kept in a register) can enter, which for random ranks
// happens about n*(1+ln(Len/n)) times, so the loop is mostly hashing and one
// comparison.
func (t *Table) selectTop(key uint64, top []int) []int {
	n := len(top)
	if n == 0 {
		return top
	}
	var ranks [maxSelect]uint64
	var least uint64 // rank of top[n-1] once top is full, else 0
	for i, s := range t.seeds {
		r := t.rankOf(objid.Mix64(key^s), i)
		if r < least || i >= n && r == least && !t.before(r, i, least, top[n-1]) {
			continue
		}
		t.insert(ranks[:n], top, min(i, n-1), r, i)
		if i >= n-1 {
			least = ranks[n-1]
		}
	}
	return top
}

// insert puts worker i with rank r into the sorted ranks and top at or before
// position j, shifting worse entries down; the entry at j drops out.
func (t *Table) insert(ranks []uint64, top []int, j int, r uint64, i int) {
	for ; j > 0 && t.before(r, i, ranks[j-1], top[j-1]); j-- {
		ranks[j], top[j] = ranks[j-1], top[j-1]
	}
	ranks[j], top[j] = r, i
}

// sortAll sorts all worker indexes into all (len(all) == Len()), best first.
// Ranks are recomputed in the comparison so that no scratch space is needed;
// this is the failover path of large tables, not the per-read one.
func (t *Table) sortAll(key uint64, all []int) []int {
	for i := range all {
		all[i] = i
	}
	slices.SortFunc(all, func(i, j int) int {
		ri, rj := t.rank(key, i), t.rank(key, j)
		switch {
		case ri > rj:
			return -1
		case ri < rj:
			return 1
		}
		return strings.Compare(t.workers[i].ID, t.workers[j].ID)
	})
	return all
}
