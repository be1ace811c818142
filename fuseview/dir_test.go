package fuseview

import (
	"context"
	"fmt"
	"testing"

	"hoard.dev/hoard/fuseview/fuseviewtest"
)

// readAll reads h to the end and returns the names and offsets.
func readAll(t *testing.T, h *dirHandle) ([]string, []uint64) {
	t.Helper()
	var names []string
	var offs []uint64
	for {
		e, errno := h.Readdirent(context.Background())
		if errno != 0 {
			t.Fatalf("readdir: %v", errno)
		}
		if e == nil {
			return names, offs
		}
		names = append(names, e.Name)
		offs = append(offs, e.Off)
	}
}

// TestDirHandle reads a cached directory and one too large to cache (which
// is streamed in pages), and seeks in both.
func TestDirHandle(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://t")
	for i := range 250 {
		b.Put(fmt.Sprintf("huge/f%03d", i), nil)
	}
	for i := range 30 {
		b.Put(fmt.Sprintf("small/f%03d", i), nil)
	}
	root, err := NewRoot(b, "", nopReader{}, Options{MaxCachedEntries: 100, ListPageSize: 60})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	for _, tc := range []struct {
		dir string
		n   int
	}{{"small/", 30}, {"huge/", 250}, {"huge/", 250}} { // the second huge read streams from the marker
		h := &dirHandle{d: &dirNode{fs: root.fs, prefix: tc.dir}}
		names, offs := readAll(t, h)
		if len(names) != tc.n {
			t.Fatalf("%s: %d entries, want %d", tc.dir, len(names), tc.n)
		}
		for i, n := range names {
			if want := fmt.Sprintf("f%03d", i); n != want || offs[i] != uint64(i+1) {
				t.Fatalf("%s entry %d: %q at offset %d, want %q at %d", tc.dir, i, n, offs[i], want, i+1)
			}
		}
		// Seek back (outside the window for huge/), then read on.
		for _, off := range []uint64{7, 0, uint64(tc.n)} {
			if errno := h.Seekdir(context.Background(), off); errno != 0 {
				t.Fatalf("seek %d: %v", off, errno)
			}
			e, errno := h.Readdirent(context.Background())
			if errno != 0 {
				t.Fatal(errno)
			}
			if off == uint64(tc.n) {
				if e != nil {
					t.Errorf("%s: entry %q after seeking to the end", tc.dir, e.Name)
				}
				continue
			}
			if want := fmt.Sprintf("f%03d", off); e == nil || e.Name != want {
				t.Errorf("%s: after seek %d got %v, want %s", tc.dir, off, e, want)
			}
		}
		h.Releasedir(context.Background(), 0)
	}
}
