package client

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Source is where bytes a reader got came from.
type Source uint8

// Sources. SourceMemory is the hot tier (a page read before); SourceWorker
// a cache worker, in this process or not; SourceBucket the bucket itself,
// which means the cache was bypassed.
const (
	SourceMemory Source = iota
	SourceWorker
	SourceBucket
	NumSources
)

func (s Source) String() string {
	switch s {
	case SourceMemory:
		return "memory"
	case SourceWorker:
		return "worker"
	case SourceBucket:
		return "bucket"
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// ReadStats counts what the readers that share it (one volume's) read. Give
// it to readers with Counted. Plain atomics: the read path pays an add.
type ReadStats struct {
	bytes [NumSources]atomic.Int64
	// Failovers are worker reads that failed and went on to the next
	// worker.
	Failovers atomic.Int64
	// Readahead is the bytes readahead asked for.
	Readahead atomic.Int64
	// Bypassed is the bytes fetched from the bucket directly because no
	// worker could serve them, readahead included.
	Bypassed atomic.Int64

	lastBypass atomic.Int64 // unix nanoseconds
	cause      atomic.Pointer[string]
}

// Bytes returns the bytes returned to readers from src. The bytes of a page
// fetched for a reader (or its readahead) count as the fetch's source until
// as many as the page holds have been read, as SourceMemory after: a page
// read through once counts once.
func (s *ReadStats) Bytes(src Source) int64 { return s.bytes[src].Load() }

// LastBypass returns when bytes last bypassed the cache and why (zero time
// if never).
func (s *ReadStats) LastBypass() (time.Time, string) {
	ns := s.lastBypass.Load()
	if ns == 0 {
		return time.Time{}, ""
	}
	cause := ""
	if p := s.cause.Load(); p != nil {
		cause = *p
	}
	return time.Unix(0, ns), cause
}

// add counts a read of n bytes, fromSrc of them from src and the rest from
// memory.
func (s *ReadStats) add(src Source, fromSrc, n int64) {
	if s == nil {
		return
	}
	if fromSrc > 0 {
		s.bytes[src].Add(fromSrc)
	}
	if n > fromSrc {
		s.bytes[SourceMemory].Add(n - fromSrc)
	}
}

func (s *ReadStats) failover() {
	if s != nil {
		s.Failovers.Add(1)
	}
}

func (s *ReadStats) readahead(n int64) {
	if s != nil {
		s.Readahead.Add(n)
	}
}

func (s *ReadStats) bypassed(n int64, cause string) {
	if s == nil {
		return
	}
	s.Bypassed.Add(n)
	s.cause.Store(&cause)
	s.lastBypass.Store(time.Now().UnixNano())
}

// bypassCause says why a read went to the bucket directly: lastErr is the
// last worker's error, nil if no worker was tried.
func bypassCause(lastErr error) string {
	switch {
	case lastErr == nil:
		return "no cache worker is alive (none registered, or all leases lapsed)"
	case errors.Is(lastErr, errBucketAtWorker):
		return "the worker could not read the bucket (it fails there but not from this node: check the workers' credentials, network and allowed sources): " + lastErr.Error()
	default:
		return "cache workers failed: " + lastErr.Error()
	}
}

// bypassLog warns, at most once per interval, that reads are bypassing the
// cache, with the bytes since the last warning and the latest cause.
type bypassLog struct {
	every time.Duration
	log   *slog.Logger
	mu    struct {
		sync.Mutex
		last         time.Time // of the last warning
		bytes, reads int64     // since then
	}
}

func (b *bypassLog) note(n int64, cause string) {
	b.mu.Lock()
	b.mu.bytes += n
	b.mu.reads++
	now := time.Now()
	if !b.mu.last.IsZero() && now.Sub(b.mu.last) < b.every {
		b.mu.Unlock()
		return
	}
	bytes, reads, since := b.mu.bytes, b.mu.reads, b.mu.last
	b.mu.bytes, b.mu.reads, b.mu.last = 0, 0, now
	b.mu.Unlock()
	attrs := []any{"bytes", bytes, "reads", reads, "cause", cause}
	if !since.IsZero() {
		attrs = append(attrs, "since", since.Format(time.RFC3339))
	}
	b.log.Warn("cache bypassed: reads go to the bucket directly, every node fetches its own copy", attrs...)
}
