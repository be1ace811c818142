package client

import (
	"testing"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/pagestore"
)

func TestHotTierBoundAndLRU(t *testing.T) {
	h := newHotTier(3*100, nil)
	k := func(p uint32) pagestore.Key {
		return pagestore.Key{File: objid.Of(objid.File("/s"), "k", "v", 1<<30), Page: p}
	}
	for p := uint32(0); p < 3; p++ {
		h.put(k(p), make([]byte, 100), SourceWorker)
	}
	h.get(k(0), 1) // 0 is now the most recent; 1 is the least
	h.put(k(3), make([]byte, 100), SourceWorker)
	if _, _, _, ok := h.get(k(1), 1); ok {
		t.Error("least recently used page survived an insert over the bound")
	}
	for _, p := range []uint32{0, 2, 3} {
		if _, _, _, ok := h.get(k(p), 1); !ok {
			t.Errorf("page %d evicted, want kept", p)
		}
	}
	if h.size() > 300 {
		t.Errorf("hot tier holds %d bytes, bound 300", h.size())
	}
	h.put(k(9), make([]byte, 301), SourceWorker) // larger than the bound: not cached
	if _, _, _, ok := h.get(k(9), 1); ok {
		t.Error("a page larger than the whole tier was cached")
	}
	off := newHotTier(-1, nil)
	off.put(k(0), []byte("x"), SourceWorker)
	if _, _, _, ok := off.get(k(0), 1); ok {
		t.Error("a disabled hot tier cached a page")
	}
}

// TestHotTierSource: a fetched page's bytes count as its fetch's source
// until as many as it holds have been read (by reads from the tier or from
// the fetch), then as memory.
func TestHotTierSource(t *testing.T) {
	h := newHotTier(1000, nil)
	k := func(p uint32) pagestore.Key {
		return pagestore.Key{File: objid.Of(objid.File("/s"), "k", "v", 1<<30), Page: p}
	}
	h.put(k(0), make([]byte, 100), SourceBucket)
	h.put(k(1), make([]byte, 100), SourceWorker)
	if _, src, n, _ := h.get(k(0), 60); src != SourceBucket || n != 60 {
		t.Errorf("first read of 60 bytes of a page from the bucket: %d from %v", n, src)
	}
	if _, src, n, _ := h.get(k(0), 60); src != SourceBucket || n != 40 {
		t.Errorf("next read of 60: %d from %v, want 40 from the bucket (the rest from memory)", n, src)
	}
	if _, _, n, _ := h.get(k(0), 100); n != 0 {
		t.Errorf("a read after the page was read through: %d bytes from its source, want 0", n)
	}
	if src, n, ok := h.consume(k(1), 100); !ok || src != SourceWorker || n != 100 {
		t.Errorf("first taker of a page from a worker: %d from %v (%v)", n, src, ok)
	}
	if _, _, n, _ := h.get(k(1), 10); n != 0 {
		t.Errorf("read after the first taker: %d from the source, want 0", n)
	}
	if _, _, ok := h.consume(k(2), 1); ok {
		t.Error("consume found a page that is not there")
	}
}

// TestHotBudgetShared (issue 11, finding 7): tiers of many clients (a
// mounter's backends, one per bucket and credentials) stay within one budget.
func TestHotBudgetShared(t *testing.T) {
	b := NewHotBudget(1000)
	var tiers []*hotTier
	for i := 0; i < 10; i++ {
		h := newHotTier(500, b)
		tiers = append(tiers, h)
		for p := uint32(0); p < 5; p++ {
			h.put(pagestore.Key{File: objid.Of(objid.File("/s"), "k", "v", int64(i)), Page: p}, make([]byte, 100), SourceWorker)
			if b.Used() > 1000 {
				t.Fatalf("budget holds %d bytes, bound 1000", b.Used())
			}
		}
	}
	var sum int64
	for _, h := range tiers {
		sum += h.size()
	}
	if sum != b.Used() || sum == 0 {
		t.Errorf("tiers hold %d bytes, budget says %d", sum, b.Used())
	}
	for _, h := range tiers {
		h.release()
	}
	if b.Used() != 0 {
		t.Errorf("after release the budget holds %d bytes", b.Used())
	}
}
