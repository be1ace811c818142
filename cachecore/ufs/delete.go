package ufs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Deleter deletes objects. It is the one write a backend may offer today, for
// the CSI controller's DeleteVolume of a volume whose data goes with it.
type Deleter interface {
	// DeletePrefix deletes every object whose key starts with prefix, and
	// nothing else.
	//
	// prefix must name a directory: non-empty, ending with "/", with no
	// empty, "." or ".." segment. A partial name such as "vol-a" (which
	// would also match "vol-a-other/...") and the whole bucket ("") are
	// refused with ErrInvalidKey before any request is made.
	//
	// It works one listing page (at most 1000 keys) at a time, so memory
	// stays bounded however many objects there are. It stops at the first
	// error or when ctx is done and returns how many objects it deleted up to
	// then; calling it again carries on. A prefix with nothing under it
	// deletes nothing and is not an error; a missing bucket is
	// ErrNoSuchBucket.
	DeletePrefix(ctx context.Context, prefix string) (deleted int64, err error)
}

var (
	_ Deleter = (*S3)(nil)
	_ Deleter = (*Local)(nil)
)

// checkDeletePrefix accepts "a/", "a/b/", ...: a valid key followed by "/".
func checkDeletePrefix(prefix string) error {
	dir, ok := strings.CutSuffix(prefix, "/")
	if !ok {
		return errors.New(`a prefix to delete must end with "/"`)
	}
	if dir == "" {
		return errors.New("refusing to delete a whole bucket")
	}
	return checkKey(dir)
}

// deletePages runs del on every page of objects under prefix, asking for the
// next page after the last key of the previous one, until none are left.
// Every key is checked to start with prefix before it is handed to del.
func deletePages(ctx context.Context, l Lister, prefix, where string, del func([]Object) (int64, error)) (int64, error) {
	var n int64
	opt := ListOptions{Prefix: prefix, MaxKeys: 1000}
	for {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("delete %s: %w", where, err)
		}
		page, err := l.List(ctx, opt)
		if err != nil {
			return n, fmt.Errorf("delete %s: %w", where, err)
		}
		for _, o := range page.Objects {
			if !strings.HasPrefix(o.Key, prefix) {
				// The store answered a listing for another prefix: do not
				// delete anything on its word.
				return n, fmt.Errorf("delete %s: listing returned key %q outside the prefix", where, o.Key)
			}
		}
		if len(page.Objects) > 0 {
			d, err := del(page.Objects)
			n += d
			if err != nil {
				return n, err
			}
		}
		if page.Next == "" {
			return n, nil
		}
		opt.StartAfter = page.Next
	}
}

// DeletePrefix lists prefix one page at a time (ListObjectsV2) and deletes
// each page with one multi-object delete request (POST ?delete). In a
// versioned bucket this adds delete markers: the objects disappear from
// listings, and their older versions are left to the bucket's lifecycle rules.
func (s *S3) DeletePrefix(ctx context.Context, prefix string) (int64, error) {
	where := s.where(prefix)
	if err := checkDeletePrefix(prefix); err != nil {
		return 0, fmt.Errorf("delete %s: %w: %v", where, ErrInvalidKey, err)
	}
	return deletePages(ctx, s, prefix, where, func(objs []Object) (int64, error) {
		keys := func(yield func(minio.ObjectInfo) bool) {
			for _, o := range objs {
				if !yield(minio.ObjectInfo{Key: o.Key}) {
					return
				}
			}
		}
		results, err := s.core.RemoveObjectsWithIter(ctx, s.bucket, keys, minio.RemoveObjectsOptions{})
		if err != nil {
			return 0, fmt.Errorf("delete %s: %w", where, err)
		}
		var n int64
		var first error
		for r := range results {
			switch {
			case r.Err == nil:
				n++
			case first == nil:
				first = s3Error("delete", s.where(r.ObjectName), r.Err)
			}
		}
		if first == nil && ctx.Err() != nil {
			// The iterator stops quietly when ctx is done.
			first = fmt.Errorf("delete %s: %w", where, ctx.Err())
		}
		return n, first
	})
}

// DeletePrefix removes the regular files (and symlinks to files) under
// prefix, then the directory prefix names with whatever is left in it (empty
// directories, symlinks to directories). It refuses to work through a
// symlinked directory on the way to prefix, which would delete files that
// live under another name.
func (l *Local) DeletePrefix(ctx context.Context, prefix string) (int64, error) {
	where := l.where(prefix)
	if err := checkDeletePrefix(prefix); err != nil {
		return 0, fmt.Errorf("delete %s: %w: %v", where, ErrInvalidKey, err)
	}
	dir := strings.TrimSuffix(prefix, "/")
	exists, err := l.realDir(dir)
	if err != nil || !exists {
		return 0, err
	}
	n, err := deletePages(ctx, l, prefix, where, func(objs []Object) (int64, error) {
		var n int64
		for _, o := range objs {
			if err := l.root.Remove(o.Key); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return n, l.fsError("delete", o.Key, err)
			}
			n++
		}
		return n, nil
	})
	if err != nil {
		return n, err
	}
	if err := l.root.RemoveAll(dir); err != nil {
		return n, l.fsError("delete", prefix, err)
	}
	return n, nil
}

// realDir reports whether dir exists as a directory reached without passing
// through a symlink. A missing path or a file is (false, nil); a symlink on
// the way is an error.
func (l *Local) realDir(dir string) (bool, error) {
	path := ""
	for seg := range strings.SplitSeq(dir, "/") {
		if path != "" {
			path += "/"
		}
		path += seg
		fi, err := l.root.Lstat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return false, nil
		case err != nil:
			return false, l.fsError("delete", path+"/", err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return false, fmt.Errorf("delete %s: %s is a symlink; refusing to delete through it", l.where(dir+"/"), path)
		case !fi.IsDir():
			return false, nil
		}
	}
	return true, nil
}
