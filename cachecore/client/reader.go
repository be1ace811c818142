package client

import (
	"context"
	"sync"

	"hoard.dev/hoard/cachecore/objid"
)

// Reader reads one object for one consumer (an open file) and reads ahead
// while the consumer reads sequentially.
type Reader struct {
	c     *Client
	obj   Object
	id    objid.ID
	stats *ReadStats // nil: not counted

	mu struct {
		sync.Mutex
		next   int64 // where a sequential read would start
		start  int64 // where the current sequential streak started
		run    int64 // bytes read in the current sequential streak
		window int64 // current readahead window; 0 until reads look sequential
		ahead  int64 // readahead was started up to here
	}
}

// seqThreshold is how many bytes must be read in one sequential streak before
// readahead starts. The kernel turns one random 1 MiB read into two or three
// consecutive FUSE requests (its own readahead), which must not look like a
// stream: reading 8 MiB ahead for each of them multiplied random-read traffic
// by eight (measured: 125 MiB/s warm random 1 MiB reads, against 744).
const seqThreshold = 4 << 20

// NewReader returns a Reader of obj.
func (c *Client) NewReader(obj Object) *Reader {
	return &Reader{c: c, obj: obj, id: obj.ID()}
}

// Counted returns a maker of Readers whose reads count in rs: the readers
// of one volume, when a client serves several.
func (c *Client) Counted(rs *ReadStats) CountedReaders { return CountedReaders{c: c, rs: rs} }

// CountedReaders makes Readers that count in one ReadStats.
type CountedReaders struct {
	c  *Client
	rs *ReadStats
}

// NewReader returns a Reader of obj that counts in the ReadStats.
func (cr CountedReaders) NewReader(obj Object) *Reader {
	r := cr.c.NewReader(obj)
	r.stats = cr.rs
	return r
}

// Object is the object the reader reads.
func (r *Reader) Object() Object { return r.obj }

// ReadAt reads like Client.ReadAt and, if this read continues the previous
// one, first starts reading ahead of it.
func (r *Reader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	random := r.readahead(off, int64(len(p)))
	return r.c.readAt(ctx, r.obj, r.id, p, off, r.stats, random)
}

// Slice is ReadAt without the copy when it can be: it returns the bytes
// [off, off+n) (cut at the end of the object, with io.EOF) as a slice of the
// cached page that holds them, and ok false, having read nothing, when they
// span pages. The slice must not be modified; it stays valid.
func (r *Reader) Slice(ctx context.Context, off int64, n int) (data []byte, ok bool, err error) {
	r.mu.Lock()
	_, run, start := r.streak(off, int64(n))
	r.mu.Unlock()
	data, ok, err = r.c.slice(ctx, r.obj, r.id, off, n, r.stats, isRandom(start, run))
	if ok {
		r.readahead(off, int64(n))
	}
	return data, ok, err
}

// Reorder is how far from where a stream's next read would start a read
// may start (ahead) or end (behind) and still continue the stream: the
// kernel's readahead requests of one stream are served concurrently and
// can arrive out of order (the next MiB before this one). Taking them for
// jumps made a sequential reader's reads look random (and fetch blocks)
// and reset its readahead.
const Reorder = 2 << 20

// Near reports whether a read of n bytes at off lands near next (Reorder).
func Near(off, n, next int64) bool { return off+n >= next-Reorder && off <= next+Reorder }

// streak returns whether a read of n bytes at off starts a new sequential
// streak, and the streak's length and start with it.
func (r *Reader) streak(off, n int64) (jump bool, run, start int64) {
	if off == 0 || r.mu.run == 0 || !Near(off, n, r.mu.next) {
		return true, n, off
	}
	return false, r.mu.run + n, r.mu.start
}

// isRandom says a read is random: part of a streak that started at a jump
// away from the object's start and is shorter than seqThreshold (the
// kernel's requests for one random read continue one another). Random
// reads of parts of pages fetch blocks, not whole pages; reads of a file
// from its start never do.
func isRandom(start, run int64) bool { return start > 0 && run < seqThreshold }

// readahead updates the sequential-access state and starts prefetches, and
// says whether the read is random (isRandom). Once a streak of sequential
// reads passes seqThreshold bytes, the window starts at one request
// (RequestBytes) and doubles with each read after, up to ReadaheadBytes; a
// jump resets it.
func (r *Reader) readahead(off, n int64) (random bool) {
	r.mu.Lock()
	jump, run, start := r.streak(off, n)
	if jump {
		r.mu.window, r.mu.ahead = 0, 0
	}
	r.mu.run, r.mu.start = run, start
	if jump {
		r.mu.next = off + n
	} else {
		r.mu.next = max(r.mu.next, off+n) // a late request does not move it back
	}
	if r.mu.run < seqThreshold {
		r.mu.Unlock()
		return isRandom(start, run)
	}
	switch {
	case r.mu.window == 0:
		r.mu.window = r.c.cfg.RequestBytes
	case r.mu.window < r.c.cfg.ReadaheadBytes:
		r.mu.window = min(2*r.mu.window, r.c.cfg.ReadaheadBytes)
	}
	from := max(r.mu.ahead, off+n)
	to := min(off+n+r.mu.window, r.obj.Size)
	// Top up only when at least half a request is missing, so requests stay large.
	if to-from < r.c.cfg.RequestBytes/2 && to < r.obj.Size {
		r.mu.Unlock()
		return false
	}
	r.mu.ahead = to
	r.mu.Unlock()
	if from < to {
		r.stats.readahead(to - from)
		r.c.prefetch(r.obj, r.id, from, to-from, r.stats)
	}
	return false
}
