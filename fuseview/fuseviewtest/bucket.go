package fuseviewtest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/ufs"
)

// Bucket is an in-memory ufs.UFS with S3's listing semantics. It is safe for
// concurrent use.
type Bucket struct {
	source string

	// Counts of requests: Stat, List and ReadRange calls.
	Heads, Lists, Reads atomic.Int64

	mu struct {
		sync.Mutex
		objs   map[string]object
		keys   []string // sorted
		fails  map[string]error
		stalls map[string]chan struct{}
	}
}

type object struct {
	data    []byte
	version string
	mtime   time.Time
}

var _ ufs.UFS = (*Bucket)(nil)

// NewBucket returns an empty bucket named source (e.g. "mem://odd").
func NewBucket(source string) *Bucket {
	b := &Bucket{source: source}
	b.mu.objs = make(map[string]object)
	b.mu.fails = make(map[string]error)
	b.mu.stalls = make(map[string]chan struct{})
	return b
}

// Put stores data as key, with the MD5 of data as its version (as S3's ETag
// of a single-part upload), and returns its metadata.
func (b *Bucket) Put(key string, data []byte) ufs.Object {
	sum := md5.Sum(data)
	o := object{data: bytes.Clone(data), version: hex.EncodeToString(sum[:]), mtime: time.Now().Truncate(time.Second)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.mu.objs[key]; !ok {
		i, _ := slices.BinarySearch(b.mu.keys, key)
		b.mu.keys = slices.Insert(b.mu.keys, i, key)
	}
	b.mu.objs[key] = o
	return ufs.Object{Key: key, Size: int64(len(data)), Version: o.version, ModTime: o.mtime}
}

// Delete removes key.
func (b *Bucket) Delete(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.mu.objs[key]; ok {
		delete(b.mu.objs, key)
		i, _ := slices.BinarySearch(b.mu.keys, key)
		b.mu.keys = slices.Delete(b.mu.keys, i, i+1)
	}
}

// Fail makes Stat and ReadRange of key fail with err (nil: succeed again).
// List is not affected.
func (b *Bucket) Fail(key string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.mu.fails, key)
	} else {
		b.mu.fails[key] = err
	}
}

// Stall makes Stat and ReadRange of key wait until release is called or
// their context ends (then they fail with its error).
func (b *Bucket) Stall(key string) (release func()) {
	ch := make(chan struct{})
	b.mu.Lock()
	b.mu.stalls[key] = ch
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.mu.stalls, key)
			b.mu.Unlock()
			close(ch)
		})
	}
}

// check waits out a stall of key and returns its failure, if any.
func (b *Bucket) check(ctx context.Context, key string) error {
	b.mu.Lock()
	ch := b.mu.stalls[key]
	b.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.fails[key]
}

// Source returns the name given to NewBucket as a file source
// ("mem://t" is file:///mem/t): a cache keys pages by it.
func (b *Bucket) Source() objid.Source {
	return objid.File(path.Clean("/" + strings.ReplaceAll(b.source, "://", "/")))
}

// Stat returns the metadata of key.
func (b *Bucket) Stat(ctx context.Context, key string) (ufs.Object, error) {
	b.Heads.Add(1)
	if err := b.check(ctx, key); err != nil {
		return ufs.Object{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.mu.objs[key]
	if !ok {
		return ufs.Object{}, fmt.Errorf("stat %s/%s: %w", b.source, key, ufs.ErrNotFound)
	}
	return ufs.Object{Key: key, Size: int64(len(o.data)), Version: o.version, ModTime: o.mtime}, nil
}

// List returns one page, as S3's ListObjectsV2 does: keys and common
// prefixes after StartAfter, in key order, at most MaxKeys of them.
func (b *Bucket) List(ctx context.Context, opt ufs.ListOptions) (ufs.ListPage, error) {
	b.Lists.Add(1)
	if err := ctx.Err(); err != nil {
		return ufs.ListPage{}, err
	}
	maxKeys := opt.MaxKeys
	if maxKeys <= 0 || maxKeys > 1000 {
		maxKeys = 1000
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var page ufs.ListPage
	n, last := 0, ""
	i, _ := slices.BinarySearch(b.mu.keys, opt.StartAfter)
	for ; i < len(b.mu.keys); i++ {
		key := b.mu.keys[i]
		if key <= opt.StartAfter {
			continue
		}
		if !strings.HasPrefix(key, opt.Prefix) {
			if key > opt.Prefix {
				break
			}
			continue
		}
		entry, isPrefix := key, false
		if opt.Delimiter != "" {
			if j := strings.Index(key[len(opt.Prefix):], opt.Delimiter); j >= 0 {
				entry, isPrefix = key[:len(opt.Prefix)+j+len(opt.Delimiter)], true
			}
		}
		if isPrefix && (entry <= opt.StartAfter || entry == last) {
			continue
		}
		if n == maxKeys {
			page.Next = last
			return page, nil
		}
		if isPrefix {
			page.Prefixes = append(page.Prefixes, entry)
			// Skip the rest of the keys under this prefix.
			i, _ = slices.BinarySearch(b.mu.keys, entry+string(utf8.MaxRune))
			i--
		} else {
			o := b.mu.objs[key]
			page.Objects = append(page.Objects, ufs.Object{Key: key, Size: int64(len(o.data)), Version: o.version, ModTime: o.mtime})
		}
		n, last = n+1, entry
	}
	return page, nil
}

// ReadRange returns bytes [off, off+n) of version of key.
func (b *Bucket) ReadRange(ctx context.Context, key, version string, off, n int64) (io.ReadCloser, error) {
	b.Reads.Add(1)
	if err := b.check(ctx, key); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.mu.objs[key]
	switch {
	case !ok:
		return nil, fmt.Errorf("read %s/%s: %w", b.source, key, ufs.ErrNotFound)
	case o.version != version:
		return nil, fmt.Errorf("read %s/%s: %w: want %s, have %s", b.source, key, ufs.ErrVersionMismatch, version, o.version)
	case off < 0 || n < 0:
		return nil, fmt.Errorf("read %s/%s: invalid range off=%d n=%d", b.source, key, off, n)
	}
	end := min(off+n, int64(len(o.data)))
	if off >= end {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	return io.NopCloser(bytes.NewReader(o.data[off:end])), nil
}
