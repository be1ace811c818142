package ufs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"hoard.dev/hoard/cachecore/objid"
)

// Local serves a local directory as a bucket (file:///dir). Keys are
// slash-separated paths relative to the directory; objects are its regular
// files. All access goes through an os.Root, so no key and no symlink can reach
// outside the directory: keys with "..", ".", empty or absolute segments fail
// with ErrInvalidKey, and a symlink that leads outside is treated as absent
// (ErrNotFound, left out of listings). Symlinks to files inside the directory
// are followed; symlinks to directories are not listed (a walk never loops).
//
// A version is the file's size, modification time (ns) and inode. ReadRange
// checks it when it opens the file and again when it reaches the end of the
// range, so a file rewritten in place during a read fails with
// ErrVersionMismatch rather than mixing old and new bytes, as far as size or
// mtime reveal the change.
type Local struct {
	root    *os.Root
	id      objid.Source
	source  string // id as text, for messages
	escapes error  // the error os.Root gives for a path leading outside
}

var (
	_ Stater      = (*Local)(nil)
	_ Lister      = (*Local)(nil)
	_ RangeReader = (*Local)(nil)
	_ UFS         = (*Local)(nil)
	_ io.Closer   = (*Local)(nil)
)

// NewLocal opens dir (made absolute) as a bucket. A missing directory is
// ErrNoSuchBucket. Close releases it.
func NewLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open local source %s: %w", dir, err)
	}
	id := objid.File(filepath.Clean(abs))
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("open local source %q: %w", dir, err)
	}
	source := id.String()
	root, err := os.OpenRoot(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open %s: %w: %w", source, ErrNoSuchBucket, err)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("open %s: %w: %w", source, ErrAccessDenied, err)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", source, err)
	}
	// os.Root does not export its "path escapes from parent" error; catch it
	// here to recognise it later.
	_, escapes := root.Stat("..")
	var pe *fs.PathError
	if errors.As(escapes, &pe) {
		escapes = pe.Err
	}
	return &Local{root: root, id: id, source: source, escapes: escapes}, nil
}

// Close releases the directory.
func (l *Local) Close() error { return l.root.Close() }

// Source returns the directory's name, file:///abs/dir.
func (l *Local) Source() objid.Source { return l.id }

// String returns Source as text.
func (l *Local) String() string { return l.source }

func (l *Local) where(key string) string { return l.source + "/" + key }

// checkKey accepts a relative, slash-separated path with no empty, "." or ".."
// segment.
func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty key")
	case strings.HasPrefix(key, "/"):
		return errors.New("absolute path")
	case strings.IndexByte(key, 0) >= 0:
		return errors.New("NUL byte")
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New(`empty, "." or ".." segment`)
		}
	}
	return nil
}

// checkPrefix accepts a key prefix: its directory part (up to the last "/")
// must be a valid key, the rest may be any partial name.
func checkPrefix(prefix string) error {
	if strings.IndexByte(prefix, 0) >= 0 {
		return errors.New("NUL byte")
	}
	if dir, _ := splitPrefix(prefix); dir != "" {
		return checkKey(strings.TrimSuffix(dir, "/"))
	}
	return nil
}

// splitPrefix splits a prefix after its last "/".
func splitPrefix(prefix string) (dir, name string) {
	i := strings.LastIndexByte(prefix, '/')
	return prefix[:i+1], prefix[i+1:]
}

// fsError wraps an error of the file system with the sentinel it means.
func (l *Local) fsError(op, key string, err error) error {
	where := l.where(key)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ELOOP):
		return fmt.Errorf("%s %s: %w: %w", op, where, ErrNotFound, err)
	case l.escapes != nil && errors.Is(err, l.escapes):
		return fmt.Errorf("%s %s: %w: a symlink leads outside the root", op, where, ErrNotFound)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s %s: %w: %w", op, where, ErrAccessDenied, err)
	}
	return fmt.Errorf("%s %s: %w", op, where, err)
}

func localVersion(fi fs.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%x-%x-%x", fi.Size(), fi.ModTime().UnixNano(), ino)
}

func (l *Local) localObject(key string, fi fs.FileInfo) Object {
	o := Object{Key: key, Size: fi.Size(), Version: localVersion(fi), ModTime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		o.Owner = &Owner{UID: st.Uid, GID: st.Gid, Perm: l.reachable(key, st.Uid, st.Gid, fi.Mode().Perm())}
	}
	return o
}

// reachable narrows perm to the classes of users that can reach key in the
// source: one that cannot search every directory from the root down to key
// cannot open the file there, so a view of it must not let them either.
// Others keep their bits only where every such directory is searchable by
// others; the file's group where it is by others or by that same group;
// the file's owner where it is by others or owned by them and searchable by
// its owner. It only ever narrows (the owner's other groups are not
// considered), and a directory that cannot be read gives nobody anything.
func (l *Local) reachable(key string, uid, gid uint32, perm fs.FileMode) fs.FileMode {
	dir := path.Dir(key)
	for {
		fi, err := l.root.Stat(dir)
		if err != nil {
			return 0
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return 0
		}
		if m := fi.Mode().Perm(); m&0o001 == 0 {
			perm &^= 0o007
			if st.Gid != gid || m&0o010 == 0 {
				perm &^= 0o070
			}
			if st.Uid != uid || m&0o100 == 0 {
				perm &^= 0o700
			}
		}
		if dir == "." {
			return perm
		}
		dir = path.Dir(dir)
	}
}

// Stat returns the regular file key (following symlinks inside the root).
func (l *Local) Stat(ctx context.Context, key string) (Object, error) {
	if err := checkKey(key); err != nil {
		return Object{}, fmt.Errorf("stat %s: %w: %v", l.where(key), ErrInvalidKey, err)
	}
	fi, err := l.root.Stat(key)
	if err != nil {
		return Object{}, l.fsError("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Object{}, fmt.Errorf("stat %s: %w: not a regular file", l.where(key), ErrNotFound)
	}
	return l.localObject(key, fi), nil
}

// ReadRange opens key, checks its version and returns a reader of the range.
func (l *Local) ReadRange(ctx context.Context, key, version string, off, n int64) (io.ReadCloser, error) {
	where := l.where(key)
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("read %s: %w: %v", where, ErrInvalidKey, err)
	}
	switch {
	case version == "":
		return nil, fmt.Errorf("read %s: empty version", where)
	case off < 0 || n < 0:
		return nil, fmt.Errorf("read %s: invalid range off=%d n=%d", where, off, n)
	case n == 0:
		return io.NopCloser(strings.NewReader("")), nil
	}
	// O_NONBLOCK: opening a FIFO must not hang; it is refused below.
	f, err := l.root.OpenFile(key, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, l.fsError("read", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, l.fsError("read", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("read %s: %w: not a regular file", where, ErrNotFound)
	}
	if got := localVersion(fi); got != version {
		f.Close()
		return nil, fmt.Errorf("read %s: %w: want version %s, file is %s", where, ErrVersionMismatch, version, got)
	}
	size := fi.Size()
	if off >= size {
		f.Close()
		return io.NopCloser(strings.NewReader("")), nil
	}
	return &localRange{
		f:       f,
		r:       io.NewSectionReader(f, off, min(n, size-off)),
		size:    size,
		version: version,
		where:   where,
	}, nil
}

// localRange reads a section of an open file and re-checks the version at the
// end of the section.
type localRange struct {
	f       *os.File
	r       *io.SectionReader
	size    int64 // the file's when opened
	version string
	where   string
	err     error // sticky end-of-range result
}

// ObjectSize implements Sized.
func (r *localRange) ObjectSize() int64 { return r.size }

func (r *localRange) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.r.Read(p)
	if err == io.EOF {
		fi, serr := r.f.Stat()
		switch {
		case serr != nil:
			err = fmt.Errorf("read %s: %w", r.where, serr)
		case localVersion(fi) != r.version:
			err = fmt.Errorf("read %s: %w: the file changed while being read", r.where, ErrVersionMismatch)
		}
		r.err = err
	}
	return n, err
}

func (r *localRange) Close() error { return r.f.Close() }

// dirent is a directory entry; sortKey is its name, plus "/" for a directory,
// so that sorting entries by sortKey sorts all keys below them in byte order.
type dirent struct {
	name, sortKey string
	isDir, isLink bool
}

// readDir returns the entries of dir ("" or ending with "/") sorted by
// sortKey, leaving out everything but files, directories and symlinks. A
// missing directory has no entries.
func (l *Local) readDir(dir string) ([]dirent, error) {
	name := strings.TrimSuffix(dir, "/")
	if name == "" {
		name = "."
	}
	f, err := l.root.Open(name)
	if err != nil {
		err = l.fsError("list", dir, err)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return nil, nil
		}
		return nil, l.fsError("list", dir, err)
	}
	ents := make([]dirent, 0, len(des))
	for _, de := range des {
		e := dirent{name: de.Name(), sortKey: de.Name()}
		switch t := de.Type(); {
		case t.IsDir():
			e.isDir = true
			e.sortKey += "/"
		case t&fs.ModeSymlink != 0:
			e.isLink = true
		case t.IsRegular():
		default:
			continue
		}
		ents = append(ents, e)
	}
	slices.SortFunc(ents, func(a, b dirent) int { return strings.Compare(a.sortKey, b.sortKey) })
	return ents, nil
}

// fileObject returns the object for a non-directory entry, false if it is
// gone, or a symlink that does not lead to a regular file inside the root.
func (l *Local) fileObject(key string, e dirent) (Object, bool) {
	stat := l.root.Lstat
	if e.isLink {
		stat = l.root.Stat
	}
	fi, err := stat(key)
	if err != nil || !fi.Mode().IsRegular() {
		return Object{}, false
	}
	return l.localObject(key, fi), true
}

// List lists one directory (Delimiter "/") or walks the tree (Delimiter "").
// Both are sorted by key in byte order, as S3 sorts, and resumable at any
// StartAfter; a walk skips whole subtrees that sort before StartAfter.
func (l *Local) List(ctx context.Context, opt ListOptions) (ListPage, error) {
	where := l.where(opt.Prefix)
	if err := checkPrefix(opt.Prefix); err != nil {
		return ListPage{}, fmt.Errorf("list %s: %w: %v", where, ErrInvalidKey, err)
	}
	maxKeys := opt.MaxKeys
	if maxKeys <= 0 {
		maxKeys = 1000
	}
	switch opt.Delimiter {
	case "/":
		return l.listDir(ctx, opt, maxKeys)
	case "":
		var page ListPage
		dir, _ := splitPrefix(opt.Prefix)
		if _, err := l.walk(ctx, dir, opt, maxKeys, &page); err != nil {
			return ListPage{}, err
		}
		return page, nil
	default:
		return ListPage{}, fmt.Errorf("list %s: delimiter %q not supported (want \"/\" or \"\")", where, opt.Delimiter)
	}
}

func (l *Local) listDir(ctx context.Context, opt ListOptions, maxKeys int) (ListPage, error) {
	if err := ctx.Err(); err != nil {
		return ListPage{}, fmt.Errorf("list %s: %w", l.where(opt.Prefix), err)
	}
	dir, namePrefix := splitPrefix(opt.Prefix)
	ents, err := l.readDir(dir)
	if err != nil {
		return ListPage{}, err
	}
	var page ListPage
	n, last := 0, ""
	for _, e := range ents {
		key := dir + e.sortKey
		if !strings.HasPrefix(e.name, namePrefix) || key <= opt.StartAfter {
			continue
		}
		var obj Object
		if !e.isDir {
			var ok bool
			if obj, ok = l.fileObject(key, e); !ok {
				continue
			}
		}
		if n == maxKeys {
			page.Next = last
			break
		}
		if e.isDir {
			page.Prefixes = append(page.Prefixes, key)
		} else {
			page.Objects = append(page.Objects, obj)
		}
		n, last = n+1, key
	}
	return page, nil
}

// walk appends to page the objects under dir, in key order, that match opt.
// It reports true once the page is full.
func (l *Local) walk(ctx context.Context, dir string, opt ListOptions, maxKeys int, page *ListPage) (bool, error) {
	if err := ctx.Err(); err != nil {
		return true, fmt.Errorf("list %s: %w", l.where(opt.Prefix), err)
	}
	ents, err := l.readDir(dir)
	if err != nil {
		return true, err
	}
	for _, e := range ents {
		key := dir + e.sortKey
		if e.isDir {
			// Every key below starts with key: skip the subtree if that
			// cannot match Prefix or if all of it sorts before StartAfter.
			if !strings.HasPrefix(key, opt.Prefix) && !strings.HasPrefix(opt.Prefix, key) {
				continue
			}
			if key < opt.StartAfter && !strings.HasPrefix(opt.StartAfter, key) {
				continue
			}
			if full, err := l.walk(ctx, key, opt, maxKeys, page); full || err != nil {
				return full, err
			}
			continue
		}
		if !strings.HasPrefix(key, opt.Prefix) || key <= opt.StartAfter {
			continue
		}
		obj, ok := l.fileObject(key, e)
		if !ok {
			continue
		}
		if len(page.Objects) == maxKeys {
			page.Next = page.Objects[maxKeys-1].Key
			return true, nil
		}
		page.Objects = append(page.Objects, obj)
	}
	return false, nil
}
