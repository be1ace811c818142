package fuseview

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// dirHandle is one open directory. It reads the directory's listing (cached,
// or fetched whole) on the first readdir, and streams the rest of a directory
// too large to cache page by page, holding one page at a time.
//
// Offsets are positions: the entry at index i has offset i+1. A seek inside
// the window of entries held is free; any other seek (rewinddir, telldir
// from long ago) loads the listing again and pages forward.
//
// It is a handle rather than an fs.DirStream because a DirStream's HasNext
// has no context and no error, and because READDIRPLUS asks a handle (as
// fs.FileLookuper) for the node of the entry it just returned, which here
// comes straight from the entry, with no lookup.
type dirHandle struct {
	d *dirNode

	mu      sync.Mutex
	loaded  bool
	win     []dentry // entries [base, base+len(win)) of the directory
	base    uint64
	pos     uint64    // index of the next entry
	more    *pager    // continues after win; nil when win reaches the end
	expires time.Time // until when win's entries hold
	last    dentry    // the entry returned last
}

var (
	_ = (fs.FileReaddirenter)((*dirHandle)(nil))
	_ = (fs.FileSeekdirer)((*dirHandle)(nil))
	_ = (fs.FileLookuper)((*dirHandle)(nil))
	_ = (fs.FileReleasedirer)((*dirHandle)(nil))
)

// load (re)starts the handle at the beginning of the directory's listing.
// The caller holds h.mu.
func (h *dirHandle) load(ctx context.Context) syscall.Errno {
	defer h.d.fs.stats.Latency[OpReaddir].Since(time.Now())
	octx, cancel := h.d.fs.opContext(ctx)
	defer cancel()
	l, err := h.d.fs.meta.listDir(octx, h.d.prefix)
	if err != nil {
		return h.d.fs.errno(ctx, err, "list", h.d.prefix)
	}
	h.loaded = true
	h.d.fs.meta.prefetchChildren(h.d.prefix, l)
	h.win, h.base, h.expires, h.more = l.entries, 0, l.expires, nil
	if !l.complete {
		h.more = &pager{c: h.d.fs.meta, dir: h.d.prefix, after: l.after}
	}
	return 0
}

// Readdirent returns the next entry, or nil at the end.
func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.loaded {
		if errno := h.load(ctx); errno != 0 {
			return nil, errno
		}
	}
	for h.pos >= h.base+uint64(len(h.win)) {
		if h.more == nil {
			return nil, 0
		}
		if errno := h.nextPage(ctx); errno != 0 {
			return nil, errno
		}
	}
	de := h.win[h.pos-h.base]
	h.pos++
	h.last = de
	e := &fuse.DirEntry{Name: de.name, Mode: syscall.S_IFREG, Off: h.pos}
	if de.dir {
		e.Mode = syscall.S_IFDIR
	}
	if ch := h.d.GetChild(de.name); ch != nil && ch.Mode() == e.Mode {
		e.Ino = ch.StableAttr().Ino
	}
	return e, 0
}

// nextPage replaces the window with the next page of a streamed directory.
func (h *dirHandle) nextPage(ctx context.Context) syscall.Errno {
	defer h.d.fs.stats.Latency[OpReaddir].Since(time.Now())
	octx, cancel := h.d.fs.opContext(ctx)
	defer cancel()
	now := h.d.fs.meta.now()
	page, err := h.more.next(octx, nil)
	if err != nil {
		return h.d.fs.errno(ctx, err, "list", h.d.prefix)
	}
	h.base += uint64(len(h.win))
	h.win, h.expires = page, h.d.fs.meta.expiry(now, h.d.fs.meta.ttl)
	if h.more.done {
		h.more = nil
	}
	return 0
}

// Seekdir moves to offset off. Offset 0 (rewinddir) reloads the listing, so
// a long-open handle sees a refreshed directory.
func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if off == 0 || !h.loaded || off < h.base || off > h.base+uint64(len(h.win)) {
		if errno := h.load(ctx); errno != 0 {
			return errno
		}
	}
	h.pos = off
	return 0
}

// Lookup gives READDIRPLUS the node of the entry just returned.
func (h *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	h.mu.Lock()
	de, exp := h.last, h.expires
	h.mu.Unlock()
	if de.name != name {
		return h.d.Lookup(ctx, name, out)
	}
	return h.d.child(ctx, de, exp, out), 0
}

// Releasedir drops the entries held.
func (h *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.win, h.more = nil, nil
}
