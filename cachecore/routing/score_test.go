package routing

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"hoard.dev/hoard/cachecore/objid"
)

// TestUnitInterval checks the extremes of the hash-to-(0,1) map: ln(u) must be
// finite and negative for every hash, so every weighted rank is a real score.
func TestUnitInterval(t *testing.T) {
	for _, h := range []uint64{0, 1, 1 << 11, 1<<12 - 1, 1 << 12, math.MaxUint64 >> 1, math.MaxUint64 - 1, math.MaxUint64} {
		u := (float64(h>>12) + 0.5) * 0x1p-52
		if !(u > 0 && u < 1) || !(math.Log(u) < 0) || math.IsInf(math.Log(u), 0) {
			t.Errorf("h %#x: u = %v, ln(u) = %v; want u in (0, 1)", h, u, math.Log(u))
		}
	}
	for _, w := range []float64{1, 1e-300} {
		if lo, hi := weightedRank(0, w), weightedRank(math.MaxUint64, w); !(lo < hi) {
			t.Errorf("weight %v: rank of hash 0 (%#x) not below rank of max hash (%#x)", w, lo, hi)
		}
	}
}

// TestEqualWeightsShortcut checks that comparing raw hashes (equal weights)
// orders workers exactly as the weighted scores would.
func TestEqualWeightsShortcut(t *testing.T) {
	ws := make([]Worker, 100)
	for i := range ws {
		ws[i] = Worker{ID: fmt.Sprintf("worker-%d", i)}
	}
	fast, err := New(ws)
	if err != nil {
		t.Fatal(err)
	}
	slow := *fast
	slow.weights = make([]float64, len(ws))
	for i := range slow.weights {
		slow.weights[i] = 1
	}
	var a, b []int
	for k := range uint64(5000) {
		key := objid.Mix64(k)
		a, b = fast.Order(key, a), slow.Order(key, b)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("key %#x: raw-hash order %v, weighted order %v", key, a, b)
		}
	}
}

// TestTiesByID forces two workers to tie on every key (same seed, same
// weight) and checks that the smaller ID always comes first, whatever the
// input order and whichever method is asked.
func TestTiesByID(t *testing.T) {
	tests := map[string][]float64{
		"equal":       slices.Repeat([]float64{1}, 10),
		"weighted":    {1, 2, 3, 3, 1, 2, 3, 3, 1, 2},
		"equal-40":    slices.Repeat([]float64{1}, 40), // Order sorts instead of selecting
		"weighted-40": slices.Repeat([]float64{1, 2, 3, 3, 1, 2, 3, 3, 1, 2}, 4),
	}
	for name, weights := range tests {
		for _, pair := range [][2]int{{2, 7}, {7, 2}} { // which input position gets "tie-a"
			t.Run(fmt.Sprintf("%s/a-at-%d", name, pair[0]), func(t *testing.T) {
				ws := make([]Worker, len(weights))
				for i, w := range weights {
					ws[i] = Worker{ID: fmt.Sprintf("worker-%d", i), Weight: w}
				}
				ws[pair[0]].ID, ws[pair[1]].ID = "tie-a", "tie-b"
				tab, err := New(ws)
				if err != nil {
					t.Fatal(err)
				}
				tab.seeds[pair[1]] = tab.seeds[pair[0]]
				a, b := pair[0], pair[1]
				var order []int
				for k := range uint64(5000) {
					key := objid.Mix64(k)
					order = tab.Order(key, order)
					ia, ib := slices.Index(order, a), slices.Index(order, b)
					if ib != ia+1 {
						t.Fatalf("key %#x: order %v, want tie-b (%d) right after tie-a (%d)", key, order, b, a)
					}
					if own := tab.Owner(key); own != order[0] || own == b {
						t.Fatalf("key %#x: Owner %d, Order %v", key, own, order)
					}
					if top := tab.Top(key, ib+1, nil); !slices.Equal(top, order[:ib+1]) {
						t.Fatalf("key %#x: Top(%d) %v, want %v", key, ib+1, top, order[:ib+1])
					}
				}
			})
		}
	}
}
