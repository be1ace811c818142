package fuseview

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"hoard.dev/hoard/fuseview/fuseviewtest"
)

// storedBucket is a bucket with a few directories.
func storedBucket() *fuseviewtest.Bucket {
	b := fuseviewtest.NewBucket("mem://stored")
	for _, k := range []string{"a", "b", "d/x", "d/y", "d/e/z"} {
		b.Put(k, []byte(k))
	}
	return b
}

// listAll lists the root and d/ and waits for the listings to be stored.
func listAll(t *testing.T, c *metaCache) {
	t.Helper()
	mustList(t, c, "")
	mustList(t, c, "d/")
	settle(t, c)
	waitStored(t, c.disk.dir, 2)
}

func waitStored(t *testing.T, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join(dir, "*"+listingSuffix))
		if len(m) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d listing files stored, want %d", len(m), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestListingsKeptAcrossMounts(t *testing.T) {
	b := storedBucket()
	dir := t.TempDir()
	opt := Options{ListingDir: dir, ListingScope: "tenant-a"}
	c1, _ := newTestCache(t, b, opt)
	listAll(t, c1)
	want := names(mustList(t, c1, "d/"))

	c2, clk := newTestCache(t, b, opt) // a new mount on the same cache dir
	lists := b.Lists.Load()
	if got := names(mustList(t, c2, "d/")); !slices.Equal(got, want) {
		t.Errorf("stored listing of d/: %q, want %q", got, want)
	}
	mustList(t, c2, "")
	for _, name := range []string{"x", "y", "e"} {
		if _, _, err := c2.lookup(context.Background(), "d/", name); err != nil {
			t.Errorf("lookup d/%s: %v", name, err)
		}
	}
	if got := b.Lists.Load() - lists; got != 0 {
		t.Errorf("the second mount made %d LIST requests, want 0", got)
	}
	if got := c2.stats.StoredListings.Load(); got != 2 {
		t.Errorf("%d listings read back, want 2", got)
	}

	// Past MetadataTTL the stored listings are not used.
	clk.advance(DefaultMetadataTTL + time.Second)
	c3, clk3 := newTestCache(t, b, opt)
	clk3.advance(DefaultMetadataTTL + time.Second)
	lists = b.Lists.Load()
	mustList(t, c3, "d/")
	if got := b.Lists.Load() - lists; got == 0 {
		t.Error("an expired stored listing was used")
	}
}

func TestStoredListingsAreScoped(t *testing.T) {
	b := storedBucket()
	dir := t.TempDir()
	c1, _ := newTestCache(t, b, Options{ListingDir: dir, ListingScope: "tenant-a"})
	listAll(t, c1)
	for name, c := range map[string]*metaCache{
		"another scope": func() *metaCache {
			c, _ := newTestCache(t, b, Options{ListingDir: dir, ListingScope: "tenant-b"})
			return c
		}(),
		"another source": func() *metaCache {
			c, _ := newTestCache(t, fuseviewtest.NewBucket("mem://other"), Options{ListingDir: dir, ListingScope: "tenant-a"})
			return c
		}(),
	} {
		if l := c.cachedListing("d/", c.now()); l != nil {
			t.Errorf("%s read a stored listing: %q", name, names(l))
		}
	}
	// A file renamed to another directory's name is refused: its content
	// names the directory it holds.
	c2, _ := newTestCache(t, b, Options{ListingDir: dir, ListingScope: "tenant-a"})
	if err := os.Rename(c2.disk.path("d/"), c2.disk.path("d/e/")); err != nil {
		t.Fatal(err)
	}
	if l := c2.cachedListing("d/e/", c2.now()); l != nil {
		t.Errorf("a listing of d/ was taken for d/e/: %q", names(l))
	}
}

func TestStoredListingsAreChecked(t *testing.T) {
	b := storedBucket()
	dir := t.TempDir()
	opt := Options{ListingDir: dir}
	c1, _ := newTestCache(t, b, opt)
	listAll(t, c1)
	s := c1.disk
	good := mustList(t, c1, "d/")

	bad := map[string]func() []byte{
		"flipped byte": func() []byte {
			b := s.encode("d/", good)
			b[len(b)/2] ^= 1
			return b
		},
		"truncated": func() []byte { b := s.encode("d/", good); return b[:len(b)-7] },
		"unsorted": func() []byte {
			l := *good
			l.entries = slices.Clone(good.entries)
			slices.Reverse(l.entries)
			return s.encode("d/", &l)
		},
		"escaping name": func() []byte {
			l := *good
			l.entries = []dentry{{name: ".."}, {name: "x"}}
			return s.encode("d/", &l)
		},
		"negative size": func() []byte {
			l := *good
			l.entries = []dentry{{name: "x", size: -5}}
			return s.encode("d/", &l)
		},
	}
	for name, content := range bad {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(s.path("d/"), content(), 0o600); err != nil {
				t.Fatal(err)
			}
			c, _ := newTestCache(t, b, opt)
			if l := c.disk.load("d/", c.now(), c.ttl); l != nil {
				t.Fatalf("a bad file was used: %q", names(l))
			}
			if _, err := os.Stat(s.path("d/")); !os.IsNotExist(err) {
				t.Errorf("the bad file was not removed: %v", err)
			}
		})
	}
}

func TestStoredListingInvalidated(t *testing.T) {
	b := storedBucket()
	dir := t.TempDir()
	c1, _ := newTestCache(t, b, Options{ListingDir: dir})
	listAll(t, c1)
	c1.invalidate("d/", "x")
	c2, _ := newTestCache(t, b, Options{ListingDir: dir})
	if l := c2.cachedListing("d/", c2.now()); l != nil {
		t.Errorf("an invalidated listing was read back: %q", names(l))
	}
	if l := c2.cachedListing("", c2.now()); l == nil {
		t.Error("the root's listing was lost too")
	}
}

func TestListingStoreIsBounded(t *testing.T) {
	b := storedBucket()
	dir := t.TempDir()
	c, _ := newTestCache(t, b, Options{ListingDir: dir, ListingBytes: 100})
	mustList(t, c, "")
	mustList(t, c, "d/")
	settle(t, c)
	var total int64
	m, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range m {
		st, _ := os.Stat(f)
		total += st.Size()
	}
	if total > 100 {
		t.Errorf("%d bytes of listings stored, bound 100", total)
	}
}

// TestCloseWaitsForBackgroundListings: once close returns, no fetch runs and
// none starts, so nothing writes to ListingDir after a mount is gone.
func TestCloseWaitsForBackgroundListings(t *testing.T) {
	b := storedBucket()
	dir := t.TempDir()
	c, _ := newTestCache(t, b, Options{ListingDir: dir})
	c.prefetch("")
	c.prefetch("d/")
	c.close()
	c.mu.Lock()
	running := len(c.mu.flights)
	c.mu.Unlock()
	if running != 0 {
		t.Errorf("%d listings still being fetched after close", running)
	}
	before, _ := filepath.Glob(filepath.Join(dir, "*"+listingSuffix))
	f := c.startFetch("d/e/")
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		t.Fatal("a fetch started after close did not end")
	}
	if f.err == nil {
		t.Error("a fetch started after close succeeded")
	}
	after, _ := filepath.Glob(filepath.Join(dir, "*"+listingSuffix))
	if len(after) != len(before) {
		t.Errorf("listing files went from %d to %d after close", len(before), len(after))
	}
}
