package client

import (
	"container/list"
	"sync"

	"hoard.dev/hoard/cachecore/pagestore"
)

// hotTier is an LRU of whole pages in memory, bounded in bytes. Pages are
// immutable once inserted: readers may keep a slice after it is evicted.
type hotTier struct {
	limit int64

	mu struct {
		sync.Mutex
		bytes int64
		m     map[pagestore.Key]*list.Element
		lru   list.List // front is most recent; values are *hotPage
	}
}

type hotPage struct {
	key  pagestore.Key
	data []byte
}

func newHotTier(limit int64) *hotTier {
	h := &hotTier{limit: limit}
	h.mu.m = make(map[pagestore.Key]*list.Element)
	return h
}

func (h *hotTier) get(k pagestore.Key) ([]byte, bool) {
	if h.limit <= 0 {
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.mu.m[k]
	if !ok {
		return nil, false
	}
	h.mu.lru.MoveToFront(e)
	return e.Value.(*hotPage).data, true
}

func (h *hotTier) contains(k pagestore.Key) bool {
	if h.limit <= 0 {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.mu.m[k]
	return ok
}

func (h *hotTier) put(k pagestore.Key, data []byte) {
	if h.limit <= 0 || int64(len(data)) > h.limit {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.mu.m[k]; ok {
		return
	}
	h.mu.m[k] = h.mu.lru.PushFront(&hotPage{key: k, data: data})
	h.mu.bytes += int64(len(data))
	for h.mu.bytes > h.limit {
		e := h.mu.lru.Back()
		p := e.Value.(*hotPage)
		h.mu.lru.Remove(e)
		delete(h.mu.m, p.key)
		h.mu.bytes -= int64(len(p.data))
	}
}

func (h *hotTier) size() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.bytes
}
