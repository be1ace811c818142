package worker

import (
	"context"
	"fmt"

	"hoard.dev/hoard/cachecore/flight"
	"hoard.dev/hoard/cachecore/pagestore"
)

// Warm makes sure every page of the requested range is cached, fetching the
// missing ones from the bucket (in parallel runs, once however many ask) and
// reading none from disk. It returns the number of bytes that were not cached
// when it was called.
func (w *Worker) Warm(ctx context.Context, req Request) (fetched int64, err error) {
	if err := req.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if req.Len == 0 {
		return 0, nil
	}
	id := req.ID()
	if err := w.authorize(ctx, req, authKeyOf(req, id)); err != nil {
		return 0, err
	}
	first := uint32(req.Off / w.pageSize)
	last := uint32((req.Off + req.Len - 1) / w.pageSize)
	// Count what is missing before claiming anything: a run claimed below
	// may store or deliver later pages of this range before the loop gets
	// to them, and they were missing all the same.
	for p := first; p <= last; p++ {
		if _, missing := w.pending(pagestore.Key{File: id, Page: p}); missing {
			fetched += min(w.pageSize, req.Size-int64(p)*w.pageSize)
		}
	}
	// Claim every missing page (one ranged GET per run, in parallel), then
	// wait for them all.
	var calls []*flight.Call
	for p := first; p <= last; p++ {
		k := pagestore.Key{File: id, Page: p}
		call, missing := w.pending(k)
		if !missing {
			continue
		}
		if call == nil {
			call, _ = w.fetchFrom(req, PagesOf(w.pageSize), k, last)
		}
		if call != nil {
			calls = append(calls, call)
		}
	}
	for _, call := range calls {
		if _, err := call.Wait(ctx); err != nil {
			return 0, err
		}
	}
	return fetched, nil
}

// pending reports whether page k is missing (neither stored nor fetched and
// on its way into the store) and, if so, the call fetching it (nil if none).
func (w *Worker) pending(k pagestore.Key) (call *flight.Call, missing bool) {
	if w.store.Contains(k) {
		return nil, false
	}
	call, ok := w.flights.Join(k)
	if ok && call.Delivered() {
		return nil, false
	}
	return call, true
}

// Cached returns how many bytes of the requested range the store holds
// (pages fetched and on their way into it count). It reads and fetches
// nothing.
func (w *Worker) Cached(ctx context.Context, req Request) (int64, error) {
	if err := req.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	id := req.ID()
	if err := w.authorize(ctx, req, authKeyOf(req, id)); err != nil {
		return 0, err
	}
	if req.Len == 0 {
		return 0, nil
	}
	first := uint32(req.Off / w.pageSize)
	last := uint32((req.Off + req.Len - 1) / w.pageSize)
	var cached int64
	for p := first; p <= last; p++ {
		k := pagestore.Key{File: id, Page: p}
		if _, missing := w.pending(k); missing {
			continue
		}
		start := max(int64(p)*w.pageSize, req.Off)
		end := min(int64(p+1)*w.pageSize, req.Off+req.Len)
		cached += end - start
	}
	return cached, nil
}

// Status is a worker's state as GET /v1/status reports it.
type Status struct {
	ID           string `json:"id"`
	UsedBytes    int64  `json:"used_bytes"`
	BudgetBytes  int64  `json:"budget_bytes"`
	Pages        int    `json:"pages"`
	PageHits     int64  `json:"page_hits"`
	PageMisses   int64  `json:"page_misses"`
	Requests     int64  `json:"requests"`
	ServedBytes  int64  `json:"served_bytes"`
	Fetches      int64  `json:"fetches"`
	FetchedBytes int64  `json:"fetched_bytes"`
	FetchErrors  int64  `json:"fetch_errors"`
	Corrupt      int64  `json:"corrupt_pages"`
	Evictions    int64  `json:"evictions"`
	// DiskFault is why the page store bypasses its disk (full, read_only,
	// io_error), empty while it is healthy.
	DiskFault string `json:"disk_fault,omitempty"`
}

// Status returns the worker's counters and fill.
func (w *Worker) Status() Status {
	used, pages := w.store.Usage()
	ss := w.store.Stats()
	return Status{
		ID: w.id, UsedBytes: used, BudgetBytes: w.store.Budget(), Pages: pages,
		PageHits: w.stats.PageHits.Load(), PageMisses: w.stats.PageMisses.Load(),
		Requests: w.stats.Requests.Load(), ServedBytes: w.stats.BytesServed.Load(),
		Fetches: w.stats.Fetches.Load(), FetchedBytes: w.stats.FetchedBytes.Load(),
		FetchErrors: w.stats.FetchErrors.Load(), Corrupt: ss.Corrupt.Load(), Evictions: ss.Evictions.Load(),
		DiskFault: diskFault(w.store.Health().Fault),
	}
}

func diskFault(f pagestore.Fault) string {
	if f == pagestore.FaultNone {
		return ""
	}
	return f.String()
}
