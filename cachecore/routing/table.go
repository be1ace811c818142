package routing

import (
	"errors"
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"
)

// ErrInvalidWorker is wrapped by the errors New returns.
var ErrInvalidWorker = errors.New("routing: invalid worker")

// Worker is one cache worker as routing sees it.
type Worker struct {
	// ID is the worker's stable identity. Keys follow IDs, not addresses or
	// positions, so an ID must survive restarts and must not be reused for a
	// worker with a different cache.
	ID string
	// Weight is the worker's relative share of the keys (for example its cache
	// size in GiB). It must be finite and not negative; 0 means 1.
	Weight float64
}

// Table routes keys over a fixed set of workers. It is immutable once built
// and safe for concurrent use. The zero Table has no workers.
type Table struct {
	workers []Worker  // as given to New, with weight 0 replaced by 1
	seeds   []uint64  // xxhash of each worker's ID
	weights []float64 // weight / max weight, in (0, 1]; nil when all are equal
}

// New builds a table over workers. Indexes returned by the table are positions
// in workers. An empty list gives a table whose Owner is -1. New returns an
// error wrapping ErrInvalidWorker for an empty or duplicate ID or a negative,
// NaN or infinite weight.
func New(workers []Worker) (*Table, error) {
	t := &Table{
		workers: make([]Worker, len(workers)),
		seeds:   make([]uint64, len(workers)),
	}
	seen := make(map[string]int, len(workers))
	for i, w := range workers {
		if err := validate(i, w, seen); err != nil {
			return nil, err
		}
		seen[w.ID] = i
		if w.Weight == 0 {
			w.Weight = 1
		}
		t.workers[i] = w
		t.seeds[i] = xxhash.Sum64String(w.ID)
	}
	t.weights = relativeWeights(t.workers)
	return t, nil
}

// validate checks worker i against the IDs seen before it.
func validate(i int, w Worker, seen map[string]int) error {
	switch {
	case w.ID == "":
		return fmt.Errorf("%w: workers[%d].ID is empty", ErrInvalidWorker, i)
	case w.Weight < 0 || math.IsNaN(w.Weight) || math.IsInf(w.Weight, 0):
		return fmt.Errorf("%w: workers[%d].Weight is %v, want a finite number >= 0", ErrInvalidWorker, i, w.Weight)
	}
	if j, ok := seen[w.ID]; ok {
		return fmt.Errorf("%w: workers[%d].ID %q duplicates workers[%d]", ErrInvalidWorker, i, w.ID, j)
	}
	return nil
}

// relativeWeights returns each weight divided by the largest, or nil when all
// weights are equal (the table then compares raw hashes, see score.go).
// Scaling every score by the same factor changes no order; it keeps ln(u)/w
// finite for any positive finite weights whose ratio is below about 1e306.
func relativeWeights(workers []Worker) []float64 {
	maxW, equal := 0.0, true
	for _, w := range workers {
		maxW = math.Max(maxW, w.Weight)
		equal = equal && w.Weight == workers[0].Weight
	}
	if equal {
		return nil
	}
	rel := make([]float64, len(workers))
	for i, w := range workers {
		rel[i] = w.Weight / maxW
	}
	return rel
}

// Len returns the number of workers.
func (t *Table) Len() int { return len(t.workers) }

// Workers returns a copy of the workers in the order given to New, with weight
// 0 reported as 1. Indexes returned by Owner, Order and Top point into it.
func (t *Table) Workers() []Worker {
	return append([]Worker(nil), t.workers...)
}
