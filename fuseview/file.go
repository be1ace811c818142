package fuseview

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/ufs"
)

// fileHandle is one open file when the kernel sends OPEN (see fsys.noOpen):
// a reader of the node's version, which reads ahead while the kernel's reads
// are sequential.
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

// Read reads through the handle's reader.
func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.mu.Lock()
	r := h.r
	h.mu.Unlock()
	if r == nil {
		return nil, syscall.EBADF
	}
	return h.f.read(ctx, r, dest, off)
}

// Release drops the reader.
func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	h.r = nil
	h.mu.Unlock()
	return 0
}

// read reads len(dest) bytes at off through r; fewer at the end of the file.
// A failed read returns an error, never a short read (the kernel would take
// a short read for the end of the file).
func (f *fileNode) read(ctx context.Context, r *client.Reader, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	fsys := f.fs
	fsys.stats.Reads.Add(1)
	defer fsys.stats.Latency[OpRead].Since(time.Now())
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
		// Overwritten or deleted since the lookup: this inode cannot go on.
		f.versionChanged()
		fsys.stats.Errors.Add(1)
		fsys.stats.ErrorsByKind[ErrChanged].Add(1)
		fsys.log.Warn("fuseview: read of a changed object", "source", fsys.source, "key", f.key(), "error", err)
		return nil, syscall.EIO
	default:
		return nil, fsys.errno(ctx, err, "read", f.key())
	}
	fsys.stats.ReadBytes.Add(int64(n))
	return fuse.ReadResultData(data), 0
}

// maxStreams is how many sequential streams of one file keep their own
// readahead state when the kernel sends no OPEN (and so no handle tells
// readers apart).
const maxStreams = 4

// stream is one sequential reader of a file: the offset its next read would
// start at, and the reader that keeps its readahead state.
type stream struct {
	r    *client.Reader
	next int64
	used uint64 // fileNode.mu.tick at the last read
}

// Read serves a read without a handle (no OPEN, see fsys.noOpen), or through
// the handle the kernel holds. Without a handle, the read continues the
// stream whose next offset it starts at, else starts a new stream (replacing
// the least recently used of maxStreams); a stream that reaches the end of
// the file is dropped, so a file read once keeps nothing.
func (f *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if h, ok := fh.(*fileHandle); ok {
		return h.Read(ctx, dest, off)
	}
	return f.read(ctx, f.streamFor(off, int64(len(dest))), dest, off)
}

// streamFor returns the reader of the stream that a read of n bytes at off
// continues, or of a new one, and moves the stream past the read.
func (f *fileNode) streamFor(off, n int64) *client.Reader {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.tick++
	size := f.mu.de.size
	end := min(off+n, size)
	// The stream the read continues: the one whose next read starts at
	// off, else one whose next is near (the kernel's readahead requests of
	// one stream can arrive out of order).
	match := -1
	for i, s := range f.mu.streams {
		if s.next == off {
			match = i
			break
		}
		if match < 0 && client.Near(off, n, s.next) {
			match = i
		}
	}
	if match >= 0 {
		i, s := match, f.mu.streams[match]
		s.next, s.used = max(s.next, end), f.mu.tick
		if end >= size {
			f.mu.streams = append(f.mu.streams[:i], f.mu.streams[i+1:]...)
		}
		return s.r
	}
	r := f.fs.reader.NewReader(f.objectLocked())
	if end >= size {
		return r // a read to the end of the file: no stream to keep
	}
	s := &stream{r: r, next: end, used: f.mu.tick}
	if len(f.mu.streams) < maxStreams {
		f.mu.streams = append(f.mu.streams, s)
		return r
	}
	lru := 0
	for i, o := range f.mu.streams {
		if o.used < f.mu.streams[lru].used {
			lru = i
		}
	}
	f.mu.streams[lru] = s
	return r
}
