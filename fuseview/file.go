package fuseview

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/ufs"
)

// fileHandle is one open file: a reader of the version that was current at
// open, which reads ahead while the kernel's reads are sequential.
type fileHandle struct {
	f  *fileNode
	mu sync.Mutex
	r  *client.Reader // nil once released
}

var (
	_ = (fs.FileReader)((*fileHandle)(nil))
	_ = (fs.FileReleaser)((*fileHandle)(nil))
)

func newFileHandle(f *fileNode, r *client.Reader) *fileHandle {
	return &fileHandle{f: f, r: r}
}

// Read reads len(dest) bytes at off through the cache; fewer at the end of
// the file. A failed read returns an error, never a short read (the kernel
// would take a short read for the end of the file).
func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.mu.Lock()
	r := h.r
	h.mu.Unlock()
	if r == nil {
		return nil, syscall.EBADF
	}
	fsys := h.f.fs
	fsys.stats.Reads.Add(1)
	octx, cancel := fsys.opContext(ctx)
	defer cancel()
	// Within one cached page (the usual 1 MiB aligned request), reply with
	// the page itself: no copy before the kernel's.
	data, ok, err := r.Slice(octx, off, len(dest))
	n := len(data)
	if !ok {
		n, err = r.ReadAt(octx, dest, off)
		data = dest[:n]
	}
	switch {
	case err == nil || errors.Is(err, io.EOF):
	case errors.Is(err, ufs.ErrVersionMismatch) || errors.Is(err, ufs.ErrNotFound):
		// Overwritten or deleted since the open: this handle cannot go on.
		h.f.versionChanged()
		fsys.stats.Errors.Add(1)
		fsys.log.Warn("fuseview: read of a changed object", "source", fsys.source, "key", h.f.key(), "error", err)
		return nil, syscall.EIO
	default:
		return nil, fsys.errno(ctx, err, "read", h.f.key())
	}
	fsys.stats.ReadBytes.Add(int64(n))
	return fuse.ReadResultData(data), 0
}

// Release drops the reader.
func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	h.r = nil
	h.mu.Unlock()
	return 0
}
