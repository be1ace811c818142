package flight

import (
	"context"
	"sync"
)

// Key is what names a page: comparable, with its page number, and able to
// name another page of the same file. The page store's key is one; the group
// needs nothing else of it.
type Key[K any] interface {
	comparable
	// PageNo is the page's number within its file.
	PageNo() uint32
	// WithPage is the key of page n of the same file.
	WithPage(n uint32) K
}

// Call is one page being fetched.
type Call struct {
	done chan struct{}
	data []byte
	err  error
	tag  uint8
	sum  uint32
}

// Wait returns the page's bytes once they arrived, or the fetch's error, or
// ctx's error. The bytes are shared: callers must not modify them.
func (c *Call) Wait(ctx context.Context) ([]byte, error) {
	select {
	case <-c.done:
		return c.data, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Tag is what the fetcher said about the bytes (FinishTagged; 0 if
// nothing), such as where they came from. Valid once Wait has returned.
func (c *Call) Tag() uint8 { return c.tag }

// Sum is the checksum the fetcher took of the bytes when they arrived
// (DeliverSum; 0 if none). Valid once Wait has returned.
func (c *Call) Sum() uint32 { return c.sum }

// Delivered reports whether the page's bytes (or error) have arrived.
func (c *Call) Delivered() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Group tracks the pages in flight. The zero value is ready to use.
type Group[K Key[K]] struct {
	mu sync.Mutex
	m  map[K]*Call
}

// Join returns the call fetching k, if there is one.
func (g *Group[K]) Join(k K) (*Call, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.m[k]
	return c, ok
}

// Claim registers a fetch of page first and the consecutive pages after it, up
// to n pages in all, stopping early at a page already in flight or for which
// skip returns true (a page already cached). It returns the number of pages
// claimed, which the caller must then fetch and Finish one by one, and the call
// of page first (claimed or already in flight). If skip(first) is true it
// returns (0, nil): the page arrived in the cache meanwhile.
//
// skip is called with the group's lock held; it must not call back into g.
func (g *Group[K]) Claim(first K, n int, skip func(K) bool) (claimed int, c *Call) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = make(map[K]*Call)
	}
	if c, ok := g.m[first]; ok {
		return 0, c
	}
	if skip != nil && skip(first) {
		return 0, nil
	}
	k := first
	for claimed < n {
		if _, busy := g.m[k]; busy || (claimed > 0 && skip != nil && skip(k)) {
			break
		}
		g.m[k] = &Call{done: make(chan struct{})}
		claimed++
		k = k.WithPage(k.PageNo() + 1)
	}
	return claimed, g.m[first]
}

// Finish delivers page k (or the error of its fetch) to its waiters and forgets
// the call; later callers find the page in the cache or fetch it anew.
func (g *Group[K]) Finish(k K, data []byte, err error) {
	g.FinishTagged(k, data, 0, err)
}

// FinishTagged is Finish with a tag for the waiters (Call.Tag). The call
// leaves the group before its waiters wake, so a waiter that asks for k
// again (after an error) starts a new fetch rather than joining this one.
func (g *Group[K]) FinishTagged(k K, data []byte, tag uint8, err error) {
	g.deliver(k, data, tag, 0, err, true)
}

// Deliver hands page k's bytes to its waiters but keeps the call, so callers
// arriving until Forget get the bytes at once: for a page on its way into the
// cache (written behind), which would otherwise be fetched again.
func (g *Group[K]) Deliver(k K, data []byte, err error) {
	g.deliver(k, data, 0, 0, err, false)
}

// DeliverSum is Deliver of bytes with their checksum (Call.Sum).
func (g *Group[K]) DeliverSum(k K, data []byte, sum uint32) {
	g.deliver(k, data, 0, sum, nil, false)
}

// deliver hands page k's outcome to its waiters; forget takes the call out
// of the group first, under the same lock, so no waiter it wakes can find it.
func (g *Group[K]) deliver(k K, data []byte, tag uint8, sum uint32, err error, forget bool) {
	g.mu.Lock()
	c, ok := g.m[k]
	if forget {
		delete(g.m, k)
	}
	g.mu.Unlock()
	if ok {
		c.data, c.err, c.tag, c.sum = data, err, tag, sum
		close(c.done)
	}
}

// Forget removes the call of page k once delivered.
func (g *Group[K]) Forget(k K) {
	g.mu.Lock()
	delete(g.m, k)
	g.mu.Unlock()
}

// ClaimRuns claims every page from first to last that is neither cached (skip)
// nor in flight, in runs of at most runPages pages that do not cross a multiple
// of align pages (0: no alignment), and calls start for each run claimed, to
// fetch it. It returns the call of page first, or nil if first is cached.
func (g *Group[K]) ClaimRuns(first K, last uint32, runPages, align int, skip func(K) bool, start func(first K, n int)) *Call {
	var firstCall *Call
	for p := first.PageNo(); p <= last; {
		k := first.WithPage(p)
		n := min(runPages, int(last-p)+1)
		if align > 0 {
			n = min(n, align-int(p)%align)
		}
		claimed, c := g.Claim(k, n, skip)
		if p == first.PageNo() {
			if c == nil {
				return nil
			}
			firstCall = c
		}
		if claimed > 0 {
			start(k, claimed)
		}
		p += uint32(max(claimed, 1))
	}
	return firstCall
}
