package fuseview

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/ufs"
)

// blockSize is the st_blksize of every file: tools such as cp and cat size
// their reads by it, and one cache page is 1 MiB.
const blockSize = 1 << 20

// EtagXattr is the extended attribute that holds a file's version (its ETag).
const EtagXattr = "user.hoard.etag"

// fsys is what all nodes of one tree share.
type fsys struct {
	source    objid.Source // the bucket, as ufs.UFS.Source() names it
	name      string       // source and prefix, for logs and the mount's FsName
	meta      *metaCache
	reader    Reader
	opt       Options
	entryTTL  time.Duration // caps of the kernel's timeouts
	attrTTL   time.Duration
	mountTime time.Time
	log       *slog.Logger
	stats     Stats
	// noOpen is set once mounted on a kernel that opens files without
	// asking when OPEN answers ENOSYS (see fileNode.Open).
	noOpen atomic.Bool
}

// Root is the top directory of a tree: the bucket, or a prefix of it. It is
// an fs.InodeEmbedder for Mount (or fs.Mount), and can be mounted once.
type Root struct {
	dirNode
}

var (
	_ = (fs.InodeEmbedder)((*Root)(nil))
	_ = (fs.NodeOnForgetter)((*Root)(nil))
)

// NewRoot returns the tree of bucket under prefix ("" for the whole bucket,
// else a key prefix; a missing trailing "/" is added). Its file bytes are
// read through reader.
func NewRoot(bucket ufs.UFS, prefix string, reader Reader, opt Options) (*Root, error) {
	if bucket == nil || reader == nil {
		return nil, errors.New("fuseview: a bucket and a reader are required")
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if !validPrefix(prefix) {
		return nil, fmt.Errorf("fuseview: prefix %q has an empty, \".\", \"..\" or too long segment", prefix)
	}
	opt = opt.withDefaults()
	f := &fsys{
		source:    bucket.Source(),
		name:      strings.TrimSuffix(bucket.Source().String()+"/"+prefix, "/"),
		reader:    reader,
		opt:       opt,
		entryTTL:  opt.kernelLimit(opt.EntryTimeout),
		attrTTL:   opt.kernelLimit(opt.AttrTimeout),
		mountTime: time.Now(),
		log:       opt.Logger,
	}
	f.meta = newMetaCache(bucket, opt, &f.stats)
	return &Root{dirNode{fs: f, prefix: prefix}}, nil
}

// Name is the bucket and prefix the tree shows, e.g. s3://host/bucket/prefix.
func (r *Root) Name() string { return r.fs.name }

// NoOpen reports whether the kernel opens the mounted tree's files without
// asking hoard (FUSE's no-open support; see MountOptions.KernelOpens).
func (r *Root) NoOpen() bool { return r.fs.noOpen.Load() }

// Stats returns the tree's counters.
func (r *Root) Stats() *Stats { return &r.fs.stats }

// Close stops background listings. Unmounting closes the root too.
func (r *Root) Close() { r.fs.meta.close() }

// OnForget is called when the file system is unmounted.
func (r *Root) OnForget() { r.Close() }

// opContext bounds one operation by OpTimeout.
func (f *fsys) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, f.opt.OpTimeout)
}

// errno maps err from an operation on key to an errno. ctx is the request's
// own context: if the caller interrupted the request, the answer is EINTR.
// Errors that are not the bucket's plain answer are counted and logged.
func (f *fsys) errno(ctx context.Context, err error, op, key string) syscall.Errno {
	switch {
	case errors.Is(err, ufs.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, ufs.ErrAccessDenied):
		f.stats.ErrorsByKind[ErrAccessDenied].Add(1)
		f.log.Warn("fuseview: access denied", "op", op, "source", f.source, "key", key, "error", err)
		return syscall.EACCES
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		f.stats.ErrorsByKind[ErrInterrupted].Add(1)
		return syscall.EINTR
	case errors.Is(err, context.DeadlineExceeded):
		f.stats.ErrorsByKind[ErrTimeout].Add(1)
	default:
		f.stats.ErrorsByKind[ErrIO].Add(1)
	}
	f.stats.Errors.Add(1)
	f.log.Warn("fuseview: "+op+" failed", "source", f.source, "key", key, "error", err)
	return syscall.EIO
}

// until is how long the kernel may keep an answer that holds until exp, at
// most limit.
func (f *fsys) until(limit time.Duration, exp time.Time) time.Duration {
	return max(0, min(limit, exp.Sub(f.meta.now())))
}

func (f *fsys) fileAttr(a *fuse.Attr, de dentry) {
	a.Mode = syscall.S_IFREG | uint32(f.opt.FileMode)
	a.Uid, a.Gid = f.opt.UID, f.opt.GID
	if f.opt.SourceOwners {
		// The source's owner and mode, without write bits; a file whose
		// owner is unknown is shown to its owner's class only: never wider.
		a.Mode, a.Uid, a.Gid = syscall.S_IFREG, 0, 0
		if o := de.owner; o != nil {
			a.Mode |= uint32(o.Perm.Perm() &^ 0o222)
			a.Uid, a.Gid = o.UID, o.GID
		}
	}
	a.Size = uint64(de.size)
	a.Blocks = (a.Size + 511) / 512
	a.Blksize = blockSize
	a.Nlink = 1
	a.SetTimes(&de.mtime, &de.mtime, &de.mtime)
}

// dirAttr fills the attributes of the directory prefix: its mtime is the
// newest in its cached listing, else the mount time.
func (f *fsys) dirAttr(a *fuse.Attr, prefix string) {
	mtime, ok := f.meta.dirTime(prefix)
	if !ok {
		mtime = f.mountTime
	}
	a.Mode = syscall.S_IFDIR | uint32(f.opt.DirMode)
	a.Blksize = blockSize
	a.Nlink = 1
	a.Uid, a.Gid = f.opt.UID, f.opt.GID
	a.SetTimes(&mtime, &mtime, &mtime)
}

// dirNode is a directory: the common prefix prefix.
type dirNode struct {
	fs.Inode
	roOps
	fs     *fsys
	prefix string // "" or ends with "/"
}

var (
	_ = (fs.NodeLookuper)((*dirNode)(nil))
	_ = (fs.NodeGetattrer)((*dirNode)(nil))
	_ = (fs.NodeOpendirHandler)((*dirNode)(nil))
	_ = (fs.NodeGetxattrer)((*dirNode)(nil))
	_ = (fs.NodeListxattrer)((*dirNode)(nil))
	_ = (fs.NodeStatfser)((*dirNode)(nil))
)

// Lookup finds name in the directory.
func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	defer d.fs.stats.Latency[OpLookup].Since(time.Now())
	if len(name) > maxNameLen { // FUSE lets names of up to 1024 bytes through
		return nil, syscall.ENAMETOOLONG
	}
	octx, cancel := d.fs.opContext(ctx)
	defer cancel()
	de, exp, err := d.fs.meta.lookup(octx, d.prefix, name)
	if err != nil {
		// The kernel keeps the negative entry for fs.Options.NegativeTimeout:
		// go-fuse caches a miss only with that per-mount value.
		return nil, d.fs.errno(ctx, err, "lookup", d.prefix+name)
	}
	return d.child(ctx, de, exp, out), 0
}

// child returns the node for entry de, valid until exp, and fills out. An
// existing node is reused if it is of the same kind and, for a file, the
// same version: a new version gets a new inode, so that the kernel cannot mix
// pages of two versions.
func (d *dirNode) child(ctx context.Context, de dentry, exp time.Time, out *fuse.EntryOut) *fs.Inode {
	out.SetEntryTimeout(d.fs.until(d.fs.entryTTL, exp))
	out.SetAttrTimeout(d.fs.until(d.fs.attrTTL, exp))
	existing := d.GetChild(de.name)
	if de.dir {
		prefix := d.prefix + de.name + "/"
		d.fs.dirAttr(&out.Attr, prefix)
		if existing != nil {
			if _, ok := existing.Operations().(*dirNode); ok {
				return existing
			}
		}
		return d.NewInode(ctx, &dirNode{fs: d.fs, prefix: prefix}, fs.StableAttr{Mode: syscall.S_IFDIR})
	}
	d.fs.fileAttr(&out.Attr, de)
	if existing != nil {
		if f, ok := existing.Operations().(*fileNode); ok && f.refresh(de, exp) {
			return existing
		}
	}
	return d.NewInode(ctx, newFileNode(d, de, exp), fs.StableAttr{Mode: syscall.S_IFREG})
}

// Getattr reports the directory's attributes; they come from no request.
func (d *dirNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fs.dirAttr(&out.Attr, d.prefix)
	out.SetTimeout(d.fs.attrTTL)
	return 0
}

// OpendirHandle opens the directory for readdir; the listing is loaded on
// the first read.
func (d *dirNode) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{d: d}, 0, 0
}

// Getxattr: directories have no extended attributes (see noXattr).
func (d *dirNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, noXattr(attr)
}

// noXattr is the answer for an extended attribute the tree does not have.
// Security labels and POSIX ACLs (security.*, system.*) are not supported
// at all (EOPNOTSUPP), which tools such as ls -l remember for the whole
// file system: they stop asking after the first file, where ENODATA costs a
// round trip per file and attribute. Other names simply do not exist.
func noXattr(attr string) syscall.Errno {
	if strings.HasPrefix(attr, "security.") || strings.HasPrefix(attr, "system.") {
		return syscall.EOPNOTSUPP
	}
	return syscall.ENODATA
}

// Listxattr: directories have no extended attributes.
func (d *dirNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return 0, 0
}

// fileNode is a file: one object, in the version last looked up.
type fileNode struct {
	fs.Inode
	roOps
	fs     *fsys
	parent *dirNode
	name   string

	// The node shows one version of the object, for its whole life: a
	// lookup that finds another version makes a new node, so the kernel
	// never mixes cached pages of two versions.
	mu struct {
		sync.Mutex
		de      dentry
		expires time.Time
		stale   bool          // the object changed: ask again, never adopt
		notify  chan struct{} // closed when the kernel has been told of a change
		streams []*stream     // readers without a handle (no OPEN), see Read
		tick    uint64
	}
}

var (
	_ = (fs.NodeGetattrer)((*fileNode)(nil))
	_ = (fs.NodeOpener)((*fileNode)(nil))
	_ = (fs.NodeFlusher)((*fileNode)(nil))
	_ = (fs.NodeReader)((*fileNode)(nil))
	_ = (fs.NodeGetxattrer)((*fileNode)(nil))
	_ = (fs.NodeListxattrer)((*fileNode)(nil))
	_ = (fs.NodeStatfser)((*fileNode)(nil))
)

func newFileNode(parent *dirNode, de dentry, exp time.Time) *fileNode {
	f := &fileNode{fs: parent.fs, parent: parent, name: de.name}
	f.mu.de, f.mu.expires = de, exp
	return f
}

func (f *fileNode) key() string { return f.parent.prefix + f.name }

// refresh takes de as the node's metadata if it is the same version.
func (f *fileNode) refresh(de dentry, exp time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if de.version != f.mu.de.version {
		return false
	}
	f.mu.de, f.mu.expires, f.mu.stale = de, exp, false
	return true
}

// current returns the file's metadata, asking the metadata cache again once
// it has expired or the object was found changed. If the object now has
// another version (or is gone), the node keeps answering for its own
// version, briefly, and the kernel is told to look the name up again, which
// makes a node for the new version.
func (f *fileNode) current(ctx context.Context) (dentry, time.Time, syscall.Errno) {
	f.mu.Lock()
	de, exp, stale := f.mu.de, f.mu.expires, f.mu.stale
	f.mu.Unlock()
	now := f.fs.meta.now()
	if !stale && now.Before(exp) {
		return de, exp, 0
	}
	octx, cancel := f.fs.opContext(ctx)
	defer cancel()
	cur, curExp, err := f.fs.meta.lookup(octx, f.parent.prefix, f.name)
	if err == nil && cur.dir {
		err = errNotFound // a directory took the name: the file is hidden now
	}
	switch {
	case err == nil && cur.version == de.version:
		f.mu.Lock()
		f.mu.de, f.mu.expires, f.mu.stale = cur, curExp, false
		f.mu.Unlock()
		return cur, curExp, 0
	case err == nil || errors.Is(err, ufs.ErrNotFound):
		f.mu.Lock()
		f.mu.stale = true
		f.mu.Unlock()
		f.parent.NotifyEntry(f.name)
		return de, now, 0
	default:
		return dentry{}, time.Time{}, f.fs.errno(ctx, err, "stat", f.key())
	}
}

// object is the version the node shows. The caller holds f.mu.
func (f *fileNode) objectLocked() client.Object {
	return client.Object{Source: f.fs.source, Key: f.key(), Version: f.mu.de.version, Size: f.mu.de.size}
}

// Getattr reports the file's size and mtime.
func (f *fileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	de, exp, errno := f.current(ctx)
	if errno != 0 {
		return errno
	}
	f.fs.fileAttr(&out.Attr, de)
	out.SetTimeout(f.fs.until(f.fs.attrTTL, exp))
	return 0
}

// Open opens the file for reading. Where the kernel supports it, it answers
// ENOSYS: the kernel then opens every file of the mount without asking
// (FUSE's no-open support, one round trip fewer per open and per close) and
// reads come to the node (Read). Otherwise the handle holds a reader of the
// node's version, and the kernel keeps its page cache (FOPEN_KEEP_CACHE): a
// node is one version.
func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	defer f.fs.stats.Latency[OpOpen].Since(time.Now())
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	if f.fs.noOpen.Load() {
		return nil, 0, syscall.ENOSYS
	}
	f.awaitNotify(ctx)
	if _, _, errno := f.current(ctx); errno != 0 {
		return nil, 0, errno
	}
	f.fs.stats.Opens.Add(1)
	f.mu.Lock()
	stale := f.mu.stale
	obj := f.objectLocked()
	f.mu.Unlock()
	if stale {
		return nil, 0, syscall.ESTALE // the kernel looks the name up again and retries
	}
	return newFileHandle(f, f.fs.reader.NewReader(obj)), fuse.FOPEN_KEEP_CACHE, 0
}

// Flush answers the FLUSH that the kernel sends at every close(2) with
// ENOSYS: the tree is read-only and holds nothing to write back, and after
// the first ENOSYS the kernel sends no FLUSH on this mount again. Without
// it, a close was a round trip even where opens cost none (no-open): one
// per file of a page-cached epoch.
func (f *fileNode) Flush(context.Context, fs.FileHandle) syscall.Errno {
	f.fs.stats.Flushes.Add(1)
	return syscall.ENOSYS
}

// versionChanged is called when a read found the object overwritten or
// deleted: forget its metadata, and have the kernel forget the name (before
// the read fails, so that the reader's next open looks it up again and gets
// a node for the new version) and this node's pages and attributes.
func (f *fileNode) versionChanged() {
	f.fs.meta.invalidate(f.parent.prefix, f.name)
	done := make(chan struct{})
	f.mu.Lock()
	f.mu.stale = true
	f.mu.streams = nil
	f.mu.notify = done
	f.mu.Unlock()
	f.parent.NotifyEntry(f.name)
	// Not from within the read: the kernel holds the page locked until the
	// read is answered, and dropping the page cache waits for that.
	go func() {
		defer close(done)
		f.NotifyContent(0, 0) // pages and attributes (the size)
	}()
}

// awaitNotify waits (at most a second) until the kernel has dropped what it
// cached of the old version, so that an open right after a failed read sees
// the new size.
func (f *fileNode) awaitNotify(ctx context.Context) {
	f.mu.Lock()
	done := f.mu.notify
	f.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
}

// Getxattr serves EtagXattr, the object's version.
func (f *fileNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr != EtagXattr {
		return 0, noXattr(attr)
	}
	de, _, errno := f.current(ctx)
	if errno != 0 {
		return 0, errno
	}
	if de.version == "" {
		return 0, syscall.ENODATA
	}
	return xattrValue(dest, de.version)
}

// Listxattr lists EtagXattr.
func (f *fileNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return xattrValue(dest, EtagXattr+"\x00")
}

// xattrValue copies v into dest, or reports its size with ERANGE if dest is
// too small (go-fuse turns that into the size answer for size queries).
func xattrValue(dest []byte, v string) (uint32, syscall.Errno) {
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// roOps answers every change with EROFS (the mount is read-only too, so the
// kernel stops most of them first) and reports file system statistics.
type roOps struct{}

var (
	_ = (fs.NodeCreater)((*dirNode)(nil))
	_ = (fs.NodeMkdirer)((*dirNode)(nil))
	_ = (fs.NodeMknoder)((*dirNode)(nil))
	_ = (fs.NodeLinker)((*dirNode)(nil))
	_ = (fs.NodeSymlinker)((*dirNode)(nil))
	_ = (fs.NodeUnlinker)((*dirNode)(nil))
	_ = (fs.NodeRmdirer)((*dirNode)(nil))
	_ = (fs.NodeRenamer)((*dirNode)(nil))
	_ = (fs.NodeTmpfiler)((*dirNode)(nil))
	_ = (fs.NodeSetattrer)((*dirNode)(nil))
	_ = (fs.NodeSetattrer)((*fileNode)(nil))
	_ = (fs.NodeSetxattrer)((*fileNode)(nil))
	_ = (fs.NodeRemovexattrer)((*fileNode)(nil))
)

func (roOps) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

func (roOps) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

func (roOps) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (roOps) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (roOps) Link(context.Context, fs.InodeEmbedder, string, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (roOps) Symlink(context.Context, string, string, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (roOps) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }

func (roOps) Rmdir(context.Context, string) syscall.Errno { return syscall.EROFS }

func (roOps) Rename(context.Context, string, fs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}

func (roOps) Setattr(context.Context, fs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (roOps) Setxattr(context.Context, string, []byte, uint32) syscall.Errno { return syscall.EROFS }

func (roOps) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }

// Statfs reports a large, empty file system of 1 MiB blocks: the bucket has
// no size to report, and tools that check for space should not refuse it.
func (roOps) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	const n = 1 << 30 // 1 PiB of 1 MiB blocks; as many inodes
	out.Bsize, out.Frsize = blockSize, blockSize
	out.Blocks, out.Bfree, out.Bavail = n, n, n
	out.Files, out.Ffree = n, n
	out.NameLen = maxNameLen
	return 0
}
