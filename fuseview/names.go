package fuseview

import (
	"cmp"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"hoard.dev/hoard/cachecore/ufs"
)

// Limits of names and keys.
const (
	maxNameLen = 255  // NAME_MAX
	maxKeyLen  = 1024 // S3's longest key, in bytes
)

// dentry is one name in a directory as the tree shows it: a file (one object
// version) or a directory (a common prefix).
type dentry struct {
	name    string
	dir     bool
	size    int64
	version string
	mtime   time.Time
	owner   *ufs.Owner // the source's owner and mode (file://), or nil
}

// fileEntry is the entry of object o. Its mtime is cut to whole seconds:
// S3 listings give milliseconds but HEAD (Last-Modified) only seconds, and a
// file's mtime must not change with the way it was looked up.
func fileEntry(name string, o ufs.Object) dentry {
	return dentry{name: name, size: o.Size, version: o.Version, mtime: o.ModTime.Truncate(time.Second), owner: o.Owner}
}

// representable tells whether name can be one segment of a POSIX path.
func representable(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= maxNameLen &&
		!strings.ContainsAny(name, "/\x00")
}

// validPrefix checks a mount prefix ("" or segments ending with "/") against
// the same rules, so that the root is a directory the tree could show.
func validPrefix(prefix string) bool {
	if prefix == "" {
		return true
	}
	if !strings.HasSuffix(prefix, "/") || len(prefix) > maxKeyLen {
		return false
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(prefix, "/"), "/") {
		if !representable(seg) {
			return false
		}
	}
	return true
}

// pageEntries appends the entries of one page of the listing of dir to dst,
// leaving out the directory's own marker and names that cannot be shown.
func (c *metaCache) pageEntries(dst []dentry, dir string, page ufs.ListPage) []dentry {
	for _, o := range page.Objects {
		name, ok := strings.CutPrefix(o.Key, dir)
		switch {
		case !ok:
			c.odd.note(o.Key, "key outside the listed prefix")
		case name == "":
			// dir's marker object: the directory exists, nothing to show.
		case representable(name):
			dst = append(dst, fileEntry(strings.Clone(name), o))
		default:
			c.odd.note(o.Key, "name not representable")
		}
	}
	for _, p := range page.Prefixes {
		name, ok := strings.CutPrefix(p, dir)
		name, slash := strings.CutSuffix(name, "/")
		switch {
		case !ok || !slash:
			c.odd.note(p, "prefix outside the listed prefix")
		case representable(name):
			dst = append(dst, dentry{name: strings.Clone(name), dir: true})
		default:
			c.odd.note(p, "name not representable")
		}
	}
	return dst
}

// finish sorts entries by name and removes the files that share a name with
// a directory (the directory wins).
func (c *metaCache) finish(dir string, entries []dentry) []dentry {
	slices.SortFunc(entries, func(a, b dentry) int {
		if r := cmp.Compare(a.name, b.name); r != 0 {
			return r
		}
		switch {
		case a.dir == b.dir:
			return 0
		case a.dir:
			return -1
		default:
			return 1
		}
	})
	out := entries[:0]
	for i, e := range entries {
		if i > 0 && e.name == entries[i-1].name {
			c.odd.note(dir+e.name, "object hidden by a directory of the same name")
			continue
		}
		out = append(out, e)
	}
	clear(entries[len(out):])
	return out
}

// oddLog logs each odd key once, at debug level. It remembers a bounded
// number of keys; past that it forgets them all and may log some again.
type oddLog struct {
	log *slog.Logger
	mu  sync.Mutex
	m   map[string]struct{}
}

const oddLogMax = 4096

func (l *oddLog) note(key, why string) {
	l.mu.Lock()
	if _, ok := l.m[key]; ok {
		l.mu.Unlock()
		return
	}
	if l.m == nil || len(l.m) >= oddLogMax {
		l.m = make(map[string]struct{})
	}
	l.m[key] = struct{}{}
	l.mu.Unlock()
	l.log.Debug("fuseview: key hidden from the tree", "key", key, "why", why)
}
