package fuseview

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// listingStore keeps complete directory listings on disk, one file per
// directory, so that a new mount of the same source (after a restart, or a
// remount) answers readdir and lookups at once instead of listing the
// bucket again, for as long as the listings are within MetadataTTL.
//
// A file is named by the SHA-256 of (scope, source, directory) and holds
// those three in full, checked on every load: a file of another source,
// scope or directory is never used, whatever its name. Its content is
// checked as a listing read from the bucket is (names representable,
// sorted, unique; sizes not negative; at most max entries) and carries a
// CRC-32C; anything else is deleted. The files together are bounded by
// maxBytes: when full, new listings are not kept (the oldest files go when
// the store is opened).
type listingStore struct {
	dir      string
	scope    string
	source   string
	maxBytes int64
	maxEnts  int
	log      *slog.Logger

	mu struct {
		sync.Mutex
		bytes int64 // on disk now (as of open, plus writes, minus removals)
	}
}

const (
	listingMagic   = "hoard-listing-1\n"
	listingSuffix  = ".lst"
	maxVersionLen  = 1024
	maxListingFile = 512 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// openListingStore opens (creating) dir for the listings of source in
// scope, removing files that are expired by ttl, unreadable, or over
// maxBytes (oldest first).
func openListingStore(dir, scope, source string, ttl time.Duration, maxBytes int64, maxEnts int, log *slog.Logger) (*listingStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("listing dir: %w", err)
	}
	s := &listingStore{dir: dir, scope: scope, source: source, maxBytes: maxBytes, maxEnts: maxEnts, log: log}
	type file struct {
		name string
		size int64
		mod  time.Time
	}
	var files []file
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing dir: %w", err)
	}
	now := time.Now()
	for _, e := range ents {
		name := e.Name()
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		switch {
		case strings.HasPrefix(name, ".tmp-") && now.Sub(info.ModTime()) > time.Minute,
			strings.HasSuffix(name, listingSuffix) && now.Sub(info.ModTime()) > ttl:
			os.Remove(filepath.Join(dir, name)) // a crashed write, or expired
		case strings.HasSuffix(name, listingSuffix):
			files = append(files, file{name, info.Size(), info.ModTime()})
			s.mu.bytes += info.Size()
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod.Before(files[j].mod) })
	for _, f := range files {
		if s.mu.bytes <= maxBytes {
			break
		}
		if os.Remove(filepath.Join(dir, f.name)) == nil {
			s.mu.bytes -= f.size
		}
	}
	return s, nil
}

// path is the file of directory d's listing.
func (s *listingStore) path(d string) string {
	h := sha256.New()
	for _, f := range []string{s.scope, s.source, d} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return filepath.Join(s.dir, hex.EncodeToString(h.Sum(nil))+listingSuffix)
}

// load returns d's listing if a file holds it and it is fresh at now (within
// ttl of its fetch, and before the expiry it was stored with).
func (s *listingStore) load(d string, now time.Time, ttl time.Duration) *listing {
	p := s.path(d)
	b, err := readBounded(p, maxListingFile)
	if err != nil {
		return nil
	}
	l, err := s.decode(b, d)
	if err != nil {
		s.log.Debug("fuseview: dropping a stored listing", "dir", d, "error", err)
		s.remove(d)
		return nil
	}
	l.expires = minTime(l.expires, l.fetched.Add(ttl))
	if !now.Before(l.expires) {
		s.remove(d)
		return nil
	}
	return l
}

// save keeps l, a complete listing of d, unless the store is full.
func (s *listingStore) save(d string, l *listing) {
	b := s.encode(d, l)
	s.mu.Lock()
	full := s.mu.bytes+int64(len(b)) > s.maxBytes
	if !full {
		s.mu.bytes += int64(len(b))
	}
	s.mu.Unlock()
	if full {
		s.log.Debug("fuseview: listing store full; listing kept in memory only", "dir", d)
		return
	}
	p := s.path(d)
	old, _ := os.Stat(p)
	if err := writeAtomic(s.dir, p, b); err != nil {
		s.log.Warn("fuseview: cannot store a listing", "dir", d, "error", err)
		s.addBytes(-int64(len(b)))
		return
	}
	if old != nil {
		s.addBytes(-old.Size())
	}
}

// remove forgets d's listing.
func (s *listingStore) remove(d string) {
	p := s.path(d)
	if st, err := os.Stat(p); err == nil && os.Remove(p) == nil {
		s.addBytes(-st.Size())
	}
}

func (s *listingStore) addBytes(n int64) {
	s.mu.Lock()
	s.mu.bytes += n
	s.mu.Unlock()
}

// The file format, all integers unsigned varints, strings length-prefixed:
//
//	magic, scope, source, dir, fetched (unix ns), expires (unix ns), count,
//	count x (name, flags (1: dir), size, version, mtime (unix s)),
//	CRC-32C of everything before it (4 bytes, little endian).
func (s *listingStore) encode(d string, l *listing) []byte {
	b := make([]byte, 0, 64+len(l.entries)*64)
	b = append(b, listingMagic...)
	for _, f := range []string{s.scope, s.source, d} {
		b = appendString(b, f)
	}
	b = binary.AppendUvarint(b, uint64(l.fetched.UnixNano()))
	b = binary.AppendUvarint(b, uint64(l.expires.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(l.entries)))
	for _, e := range l.entries {
		b = appendString(b, e.name)
		var flags uint64
		if e.dir {
			flags = 1
		}
		b = binary.AppendUvarint(b, flags)
		b = binary.AppendUvarint(b, uint64(e.size))
		b = appendString(b, e.version)
		b = binary.AppendUvarint(b, uint64(e.mtime.Unix()))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadListing = errors.New("not a valid listing file")

func (s *listingStore) decode(b []byte, d string) (*listing, error) {
	if len(b) < len(listingMagic)+4 {
		return nil, errBadListing
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum", errBadListing)
	}
	r := &decoder{b: body}
	if string(r.bytes(len(listingMagic))) != listingMagic {
		return nil, fmt.Errorf("%w: magic", errBadListing)
	}
	for _, want := range []string{s.scope, s.source, d} {
		if r.string(maxKeyLen+len(s.source)+len(s.scope)) != want {
			return nil, fmt.Errorf("%w: another scope, source or directory", errBadListing)
		}
	}
	l := &listing{complete: true}
	l.fetched = time.Unix(0, int64(r.uvarint()))
	l.expires = time.Unix(0, int64(r.uvarint()))
	n := r.uvarint()
	if n > uint64(s.maxEnts) {
		return nil, fmt.Errorf("%w: %d entries", errBadListing, n)
	}
	l.entries = make([]dentry, 0, n)
	for range n {
		e := dentry{name: r.string(maxNameLen)}
		flags := r.uvarint()
		e.dir = flags&1 != 0
		e.size = int64(r.uvarint())
		e.version = r.string(maxVersionLen)
		e.mtime = time.Unix(int64(r.uvarint()), 0)
		if r.err != nil || !representable(e.name) || e.size < 0 || flags > 1 {
			return nil, fmt.Errorf("%w: entry %q", errBadListing, e.name)
		}
		if k := len(l.entries); k > 0 && cmp.Compare(l.entries[k-1].name, e.name) >= 0 {
			return nil, fmt.Errorf("%w: entries not sorted and unique", errBadListing)
		}
		if !e.dir && e.mtime.After(l.newest) {
			l.newest = e.mtime
		}
		l.entries = append(l.entries, e)
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: length", errBadListing)
	}
	return l, nil
}

// decoder reads the fields of a listing file; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (r *decoder) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadListing
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *decoder) bytes(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = errBadListing
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *decoder) string(limit int) string {
	n := r.uvarint()
	if n > uint64(limit) {
		r.err = errBadListing
		return ""
	}
	return string(r.bytes(int(n)))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// readBounded reads a regular file of at most limit bytes.
func readBounded(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > limit {
		return nil, fmt.Errorf("%s: %w", p, fs.ErrInvalid)
	}
	var buf bytes.Buffer
	buf.Grow(int(st.Size()))
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeAtomic writes b to p through a temporary file in dir and a rename,
// so a reader sees the old file or the new one, never a part.
func writeAtomic(dir, p string, b []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}
