package client

import (
	"container/list"
	"sync"
	"sync/atomic"

	"hoard.dev/hoard/cachecore/pagestore"
)

// hotTier is an LRU of whole pages in memory, bounded in bytes. Pages are
// immutable once inserted: readers may keep a slice after it is evicted.
type hotTier struct {
	limit  int64
	budget *HotBudget // shared with other clients' tiers, or nil

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
	// src is where the page came from; unread is how many of its bytes
	// reads may still count as from src (guarded by hotTier.mu). Reads
	// beyond that count as SourceMemory: the page was read before.
	src    Source
	unread int64
}

// HotBudget bounds the hot tiers of several clients together (a mounter's
// backends): each tier keeps to its own limit, and a tier that would take
// the sum past the budget evicts its own pages first, and does not keep
// the new page if that is not enough. Memory stays bounded however many
// backends tenants make.
type HotBudget struct {
	limit int64
	used  atomic.Int64
}

// NewHotBudget returns a budget of limit bytes.
func NewHotBudget(limit int64) *HotBudget { return &HotBudget{limit: limit} }

// Used is the bytes held by the tiers sharing the budget.
func (b *HotBudget) Used() int64 { return b.used.Load() }

func (h *hotTier) over() bool {
	return h.mu.bytes > h.limit || (h.budget != nil && h.budget.used.Load() > h.budget.limit)
}

// release gives the tier's bytes back to the budget (the client closed).
func (h *hotTier) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.budget != nil {
		h.budget.used.Add(-h.mu.bytes)
	}
	h.mu.bytes = 0
	clear(h.mu.m)
	h.mu.lru.Init()
}

func newHotTier(limit int64, budget *HotBudget) *hotTier {
	h := &hotTier{limit: limit, budget: budget}
	h.mu.m = make(map[pagestore.Key]*list.Element)
	return h
}

// get returns page k for a read of n of its bytes, with where they came
// from: up to the page's length in bytes read count as its fetch's source
// (fromSrc), the rest, and all later reads, as SourceMemory.
func (h *hotTier) get(k pagestore.Key, n int64) (data []byte, src Source, fromSrc int64, ok bool) {
	if h.limit <= 0 {
		return nil, 0, 0, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.mu.m[k]
	if !ok {
		return nil, 0, 0, false
	}
	h.mu.lru.MoveToFront(e)
	p := e.Value.(*hotPage)
	src, fromSrc = p.take(n)
	return p.data, src, fromSrc, true
}

// consume is get's accounting for a read that got page k from its fetch
// rather than from the tier; ok is false if the page is not here.
func (h *hotTier) consume(k pagestore.Key, n int64) (src Source, fromSrc int64, ok bool) {
	if h.limit <= 0 {
		return 0, 0, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.mu.m[k]
	if !ok {
		return 0, 0, false
	}
	src, fromSrc = e.Value.(*hotPage).take(n)
	return src, fromSrc, true
}

// take counts a read of n bytes of p against its unread bytes. The caller
// holds the tier's lock.
func (p *hotPage) take(n int64) (Source, int64) {
	m := min(n, p.unread)
	p.unread -= m
	return p.src, m
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

func (h *hotTier) put(k pagestore.Key, data []byte, src Source) {
	if h.limit <= 0 || int64(len(data)) > h.limit {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.mu.m[k]; ok {
		return
	}
	h.mu.m[k] = h.mu.lru.PushFront(&hotPage{key: k, data: data, src: src, unread: int64(len(data))})
	h.mu.bytes += int64(len(data))
	if h.budget != nil {
		h.budget.used.Add(int64(len(data)))
	}
	for h.over() && h.mu.lru.Len() > 0 {
		e := h.mu.lru.Back()
		p := e.Value.(*hotPage)
		h.mu.lru.Remove(e)
		delete(h.mu.m, p.key)
		h.mu.bytes -= int64(len(p.data))
		if h.budget != nil {
			h.budget.used.Add(-int64(len(p.data)))
		}
	}
}

func (h *hotTier) size() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.bytes
}
