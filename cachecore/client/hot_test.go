package client

import (
	"testing"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/pagestore"
)

func TestHotTierBoundAndLRU(t *testing.T) {
	h := newHotTier(3 * 100)
	k := func(p uint32) pagestore.Key { return pagestore.Key{File: objid.Of("s", "k", "v"), Page: p} }
	for p := uint32(0); p < 3; p++ {
		h.put(k(p), make([]byte, 100))
	}
	h.get(k(0)) // 0 is now the most recent; 1 is the least
	h.put(k(3), make([]byte, 100))
	if _, ok := h.get(k(1)); ok {
		t.Error("least recently used page survived an insert over the bound")
	}
	for _, p := range []uint32{0, 2, 3} {
		if _, ok := h.get(k(p)); !ok {
			t.Errorf("page %d evicted, want kept", p)
		}
	}
	if h.size() > 300 {
		t.Errorf("hot tier holds %d bytes, bound 300", h.size())
	}
	h.put(k(9), make([]byte, 301)) // larger than the bound: not cached
	if _, ok := h.get(k(9)); ok {
		t.Error("a page larger than the whole tier was cached")
	}
	off := newHotTier(-1)
	off.put(k(0), []byte("x"))
	if _, ok := off.get(k(0)); ok {
		t.Error("a disabled hot tier cached a page")
	}
}
