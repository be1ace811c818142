package routing_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/routing"
)

const numKeys = 1_000_000

// testKeys returns numKeys realistic routing keys: 16 chunks each of 62,500
// files. They are computed once and shared; callers must not modify them.
var testKeys = sync.OnceValue(func() []uint64 {
	keys := make([]uint64, numKeys)
	var id objid.ID
	for i := range keys {
		if i%16 == 0 {
			id = objid.Of(objid.S3("bench:9000", true, "b"), fmt.Sprintf("file-%d", i/16), "v1", 1<<30)
		}
		keys[i] = id.ChunkHash(int64(i % 16))
	}
	return keys
})

// equalWorkers returns n workers named worker-0 ... worker-(n-1), weight 1.
func equalWorkers(n int) []routing.Worker {
	ws := make([]routing.Worker, n)
	for i := range ws {
		ws[i] = routing.Worker{ID: fmt.Sprintf("worker-%d", i), Weight: 1}
	}
	return ws
}

// weightedWorkers returns workers named worker-i with the given weights.
func weightedWorkers(weights ...float64) []routing.Worker {
	ws := make([]routing.Worker, len(weights))
	for i, w := range weights {
		ws[i] = routing.Worker{ID: fmt.Sprintf("worker-%d", i), Weight: w}
	}
	return ws
}

func mustNew(t testing.TB, ws []routing.Worker) *routing.Table {
	t.Helper()
	tab, err := routing.New(ws)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tab
}

// ownerIDs returns the owner's ID of every test key.
func ownerIDs(tab *routing.Table) []string {
	ws := tab.Workers()
	ids := make([]string, numKeys)
	for i, k := range testKeys() {
		ids[i] = ws[tab.Owner(k)].ID
	}
	return ids
}

// counts returns how many test keys each worker of tab owns.
func counts(tab *routing.Table) []int {
	c := make([]int, tab.Len())
	for _, k := range testKeys() {
		c[tab.Owner(k)]++
	}
	return c
}

// maxOverMean returns the largest count over the mean count.
func maxOverMean(c []int) float64 {
	total := 0
	for _, v := range c {
		total += v
	}
	return float64(slices.Max(c)) * float64(len(c)) / float64(total)
}

// uniformMaxOverMean is max/mean of numKeys keys thrown uniformly at random
// onto n bins, averaged over runs seeded runs: the ideal balance.
func uniformMaxOverMean(n, runs int) float64 {
	sum := 0.0
	for run := range runs {
		r := rand.New(rand.NewPCG(uint64(n), uint64(run)))
		c := make([]int, n)
		for range numKeys {
			c[r.IntN(n)]++
		}
		sum += maxOverMean(c)
	}
	return sum / float64(runs)
}

func TestBalance(t *testing.T) {
	for _, n := range []int{3, 10, 100, 1000} {
		t.Run(fmt.Sprintf("workers=%d", n), func(t *testing.T) {
			t.Parallel()
			got := maxOverMean(counts(mustNew(t, equalWorkers(n))))
			ideal := uniformMaxOverMean(n, 5)
			t.Logf("%d workers: max/mean routing %.4f, uniform random %.4f (ratio %.4f)", n, got, ideal, got/ideal)
			if got > 1.03*ideal {
				t.Errorf("max/mean %.4f > 1.03 * uniform %.4f", got, ideal)
			}
		})
	}
}

func TestWeightedShares(t *testing.T) {
	tests := []struct {
		name    string
		weights []float64
	}{
		{"1-5", []float64{1, 1, 2, 2, 3, 3, 4, 4, 5, 5}},
		{"0.5-7", []float64{0.5, 7, 1, 2.5, 0.5, 3}},
		{"zero-means-1", []float64{0, 2, 0, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tab := mustNew(t, weightedWorkers(tc.weights...))
			sum := 0.0
			for _, w := range tab.Workers() {
				sum += w.Weight
			}
			worst := 0.0
			for i, c := range counts(tab) {
				want := tab.Workers()[i].Weight / sum
				got := float64(c) / numKeys
				relErr := math.Abs(got-want) / want
				worst = max(worst, relErr)
				if relErr > 0.05 {
					t.Errorf("worker %d (weight %v): share %.4f, want %.4f ±5%%", i, tc.weights[i], got, want)
				}
			}
			t.Logf("%s: largest relative share error %.2f%%", tc.name, 100*worst)
		})
	}
}

// movement describes one change of membership and its bound.
type movement struct {
	name          string
	before, after []routing.Worker
	changed       string  // ID of the added or removed worker
	added         bool    // true: changed was added; false: removed
	share         float64 // changed's share of the keys where it is a member
}

// The expected fraction of keys that move is the share of the worker added or
// removed: 1/(N+1) when one of N+1 equal workers is added, 1/N when one of N is
// removed. Both are <= 1/N; the tests bound the fraction by 1.1 times that share.

func movements() []movement {
	var ms []movement
	for _, n := range []int{3, 10, 100, 1000} {
		ws := equalWorkers(n + 1)
		removed := ws[n/2]
		ms = append(ms,
			movement{fmt.Sprintf("add/workers=%d", n), ws[:n], ws, ws[n].ID, true, 1 / float64(n+1)},
			movement{fmt.Sprintf("remove/workers=%d", n), ws[:n], slices.Delete(slices.Clone(ws[:n]), n/2, n/2+1),
				removed.ID, false, 1 / float64(n)})
	}
	weights := []float64{1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 3}
	ws := weightedWorkers(weights...)
	ms = append(ms,
		movement{"add/weighted", ws[:10], ws, ws[10].ID, true, 3.0 / 33},
		movement{"remove/weighted", ws[:10], slices.Delete(slices.Clone(ws[:10]), 4, 5), ws[4].ID, false, 3.0 / 30})
	return ms
}

func TestMinimalMovement(t *testing.T) {
	for _, m := range movements() {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			before, after := ownerIDs(mustNew(t, m.before)), ownerIDs(mustNew(t, m.after))
			moved, wrong := 0, 0
			for i := range before {
				if before[i] == after[i] {
					continue
				}
				moved++
				if m.added && after[i] != m.changed || !m.added && before[i] != m.changed {
					wrong++
				}
			}
			frac := float64(moved) / numKeys
			t.Logf("%s: moved %.5f of keys, expected %.5f (ratio %.3f)", m.name, frac, m.share, frac/m.share)
			if wrong > 0 {
				t.Errorf("%d keys moved between workers other than %s", wrong, m.changed)
			}
			if frac > 1.1*m.share {
				t.Errorf("moved %.5f of keys, want <= 1.1 * %.5f", frac, m.share)
			}
		})
	}
}

// orderTables are the tables the Order/Top tests run over: sizes on both sides
// of Top's one-pass limit, equal and unequal weights.
func orderTables() map[string][]routing.Worker {
	return map[string][]routing.Worker{
		"workers=1":        equalWorkers(1),
		"workers=2":        equalWorkers(2),
		"workers=10":       equalWorkers(10),
		"workers=32":       equalWorkers(32),
		"workers=33":       equalWorkers(33),
		"workers=100":      equalWorkers(100),
		"weighted=10":      weightedWorkers(1, 1, 2, 2, 3, 3, 4, 4, 5, 5),
		"weighted=50":      weightedWorkers(slices.Repeat([]float64{0.5, 1, 2, 7, 3}, 10)...),
		"equal-not-1=5":    weightedWorkers(2, 2, 2, 2, 2),
		"zero-weight-is-1": weightedWorkers(0, 1, 0, 1),
	}
}

const orderKeys = 5000

func TestOrder(t *testing.T) {
	for name, ws := range orderTables() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tab := mustNew(t, ws)
			n := tab.Len()
			var order, top []int
			for _, k := range testKeys()[:orderKeys] {
				order = tab.Order(k, order)
				if order[0] != tab.Owner(k) {
					t.Fatalf("key %#x: Order[0] = %d, Owner = %d", k, order[0], tab.Owner(k))
				}
				if !isPermutation(order, n) {
					t.Fatalf("key %#x: Order %v is not a permutation of 0..%d", k, order, n-1)
				}
				for _, m := range []int{-1, 0, 1, 2, 3, n / 2, n - 1, n, n + 5, 40} {
					top = tab.Top(k, m, top)
					want := order[:max(0, min(m, n))]
					if !slices.Equal(top, want) {
						t.Fatalf("key %#x: Top(%d) = %v, want Order[:%d] = %v", k, m, top, len(want), want)
					}
				}
			}
		})
	}
}

// isPermutation reports whether p holds each of 0..n-1 exactly once.
func isPermutation(p []int, n int) bool {
	sorted := slices.Sorted(slices.Values(p))
	for i, v := range sorted {
		if v != i {
			return false
		}
	}
	return len(sorted) == n
}

// TestFailoverConsistent checks that removing any worker leaves every key's
// order as it was minus that worker; in particular the old Order[1] of the
// keys a worker owned becomes their owner when it is removed.
func TestFailoverConsistent(t *testing.T) {
	for name, ws := range orderTables() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tab := mustNew(t, ws)
			for _, gone := range []int{0, len(ws) / 2, len(ws) - 1} {
				smaller := mustNew(t, slices.Delete(slices.Clone(ws), gone, gone+1))
				for _, k := range testKeys()[:orderKeys] {
					want := slices.DeleteFunc(orderIDs(tab, k), func(id string) bool { return id == ws[gone].ID })
					if got := orderIDs(smaller, k); !slices.Equal(got, want) {
						t.Fatalf("without %s, key %#x: order %v, want %v", ws[gone].ID, k, got, want)
					}
				}
			}
		})
	}
}

// orderIDs returns Order(key) as worker IDs.
func orderIDs(tab *routing.Table, key uint64) []string {
	ws := tab.Workers()
	var ids []string
	for _, i := range tab.Order(key, nil) {
		ids = append(ids, ws[i].ID)
	}
	return ids
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name    string
		workers []routing.Worker
	}{
		{"empty ID", []routing.Worker{{ID: "a"}, {ID: ""}}},
		{"duplicate ID", []routing.Worker{{ID: "a"}, {ID: "b"}, {ID: "a"}}},
		{"negative weight", []routing.Worker{{ID: "a", Weight: -1}}},
		{"NaN weight", []routing.Worker{{ID: "a", Weight: math.NaN()}}},
		{"+Inf weight", []routing.Worker{{ID: "a", Weight: math.Inf(1)}}},
		{"-Inf weight", []routing.Worker{{ID: "a", Weight: math.Inf(-1)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := routing.New(tc.workers)
			if !errors.Is(err, routing.ErrInvalidWorker) || tab != nil {
				t.Fatalf("New = %v, %v; want nil, ErrInvalidWorker", tab, err)
			}
			t.Log(err)
		})
	}
}

func TestEmpty(t *testing.T) {
	for name, tab := range map[string]*routing.Table{"New(nil)": mustNew(t, nil), "zero": {}} {
		if tab.Len() != 0 || tab.Owner(42) != -1 || len(tab.Order(42, nil)) != 0 || len(tab.Top(42, 3, nil)) != 0 {
			t.Errorf("%s: Len %d, Owner %d, Order %v, Top %v; want 0, -1, [], []",
				name, tab.Len(), tab.Owner(42), tab.Order(42, nil), tab.Top(42, 3, nil))
		}
	}
}

func TestWorkersIsACopy(t *testing.T) {
	tab := mustNew(t, weightedWorkers(0, 2))
	ws := tab.Workers()
	if ws[0].Weight != 1 || ws[1].Weight != 2 {
		t.Errorf("Workers = %v, want weights 1 (from 0) and 2", ws)
	}
	ws[0].ID = "changed"
	if tab.Workers()[0].ID != "worker-0" {
		t.Error("modifying Workers() changed the table")
	}
}

// TestDeterministic checks that the input order of the workers does not change
// any key's owner (the indexes differ, the IDs must not).
func TestDeterministic(t *testing.T) {
	tests := map[string][]routing.Worker{
		"equal":    equalWorkers(50),
		"weighted": weightedWorkers(slices.Repeat([]float64{1, 2, 3, 0.5, 7}, 10)...),
	}
	for name, ws := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			shuffled := slices.Clone(ws)
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) {
				shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
			})
			a, b := mustNew(t, ws), mustNew(t, shuffled)
			if !slices.Equal(ownerIDs(a), ownerIDs(b)) {
				t.Fatal("owners depend on the input order of the workers")
			}
		})
	}
}

func TestNoAllocations(t *testing.T) {
	for name, ws := range map[string][]routing.Worker{
		"equal":    equalWorkers(100),
		"weighted": weightedWorkers(slices.Repeat([]float64{1, 2, 3, 0.5, 7}, 20)...),
	} {
		tab := mustNew(t, ws)
		dst := make([]int, 0, tab.Len())
		k := testKeys()[7]
		calls := map[string]func(){
			"Owner": func() { _ = tab.Owner(k) },
			"Top3":  func() { dst = tab.Top(k, 3, dst) },
			"Top32": func() { dst = tab.Top(k, 32, dst) },
			"Top50": func() { dst = tab.Top(k, 50, dst) },
			"Order": func() { dst = tab.Order(k, dst) },
		}
		for call, f := range calls {
			if a := testing.AllocsPerRun(100, f); a != 0 {
				t.Errorf("%s: %s allocates %v times per call, want 0", name, call, a)
			}
		}
	}
}

// BenchmarkOwner reports the cost of one Owner call by table size and weights.
func BenchmarkOwner(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		for _, kind := range []string{"equal", "weighted"} {
			b.Run(fmt.Sprintf("workers=%d/%s", n, kind), func(b *testing.B) {
				tab := mustNew(b, benchWorkers(n, kind))
				keys := testKeys()
				b.ResetTimer()
				sink := 0
				for i := range b.N {
					sink += tab.Owner(keys[i%numKeys])
				}
				_ = sink
			})
		}
	}
}

// BenchmarkTop3 reports the cost of choosing an owner and two failovers.
func BenchmarkTop3(b *testing.B) {
	benchmarkDst(b, func(tab *routing.Table, k uint64, dst []int) []int { return tab.Top(k, 3, dst) })
}

// BenchmarkOrder reports the cost of the full failover order.
func BenchmarkOrder(b *testing.B) {
	benchmarkDst(b, func(tab *routing.Table, k uint64, dst []int) []int { return tab.Order(k, dst) })
}

func benchmarkDst(b *testing.B, f func(*routing.Table, uint64, []int) []int) {
	for _, n := range []int{10, 100, 1000} {
		for _, kind := range []string{"equal", "weighted"} {
			b.Run(fmt.Sprintf("workers=%d/%s", n, kind), func(b *testing.B) {
				tab := mustNew(b, benchWorkers(n, kind))
				keys := testKeys()
				dst := make([]int, 0, n)
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					dst = f(tab, keys[i%numKeys], dst)
				}
			})
		}
	}
}

// benchWorkers returns n workers, equal or with weights 1..5.
func benchWorkers(n int, kind string) []routing.Worker {
	ws := equalWorkers(n)
	if kind == "weighted" {
		for i := range ws {
			ws[i].Weight = float64(1 + i%5)
		}
	}
	return ws
}
