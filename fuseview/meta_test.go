package fuseview

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/fuseview/fuseviewtest"
)

// clock is a settable time for TTL tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestCache returns a cache over b with a settable clock.
func newTestCache(t *testing.T, b ufs.UFS, opt Options) (*metaCache, *clock) {
	t.Helper()
	opt = opt.withDefaults()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newMetaCache(b, opt, &Stats{})
	c.now = clk.now
	t.Cleanup(c.close)
	return c, clk
}

// settle waits until no listing is being fetched.
func settle(t *testing.T, c *metaCache) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.mu.flights)
		c.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("background listing did not finish in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func names(l *listing) []string {
	var out []string
	for _, e := range l.entries {
		if e.dir {
			out = append(out, e.name+"/")
		} else {
			out = append(out, e.name)
		}
	}
	return out
}

func mustList(t *testing.T, c *metaCache, dir string) *listing {
	t.Helper()
	l, err := c.listDir(context.Background(), dir)
	if err != nil {
		t.Fatalf("list %q: %v", dir, err)
	}
	return l
}

func TestLookupAnsweredFromListing(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://t")
	for _, k := range []string{"a", "b", "d/x", "d/y"} {
		b.Put(k, []byte(k))
	}
	c, _ := newTestCache(t, b, Options{})
	l := mustList(t, c, "")
	if got, want := names(l), []string{"a", "b", "d/"}; !slices.Equal(got, want) {
		t.Fatalf("listing: got %q, want %q", got, want)
	}
	heads, lists := b.Heads.Load(), b.Lists.Load()
	for _, name := range []string{"a", "b", "d"} {
		if _, _, err := c.lookup(context.Background(), "", name); err != nil {
			t.Errorf("lookup %s: %v", name, err)
		}
	}
	if _, _, err := c.lookup(context.Background(), "", "missing"); !errors.Is(err, ufs.ErrNotFound) {
		t.Errorf("lookup missing: got %v, want not found", err)
	}
	if b.Heads.Load() != heads || b.Lists.Load() != lists {
		t.Errorf("lookups in a fresh listing made %d HEAD and %d LIST requests, want none",
			b.Heads.Load()-heads, b.Lists.Load()-lists)
	}
}

func TestLookupProbesThenPrefetchesTheDirectory(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://t")
	data := b.Put("dir/f1", []byte("one"))
	b.Put("dir/f2", []byte("two!"))
	b.Put("dir/sub/x", nil)
	c, _ := newTestCache(t, b, Options{})

	de, _, err := c.lookup(context.Background(), "dir/", "f1")
	if err != nil {
		t.Fatal(err)
	}
	if de.dir || de.size != 3 || de.version != data.Version || !de.mtime.Equal(data.ModTime) {
		t.Errorf("f1: got %+v, want the object %+v", de, data)
	}
	if got := b.Heads.Load(); got != 1 {
		t.Errorf("first lookup made %d HEAD requests, want 1", got)
	}
	settle(t, c)
	heads := b.Heads.Load()
	for name, dir := range map[string]bool{"f2": false, "sub": true, "f1": false} {
		de, _, err := c.lookup(context.Background(), "dir/", name)
		if err != nil || de.dir != dir {
			t.Errorf("lookup %s: got %+v, %v; want dir=%t", name, de, err, dir)
		}
	}
	if got := b.Heads.Load() - heads; got != 0 {
		t.Errorf("lookups after the prefetched listing made %d HEAD requests, want 0", got)
	}
}

func TestNegativeEntries(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://t")
	b.Put("present", []byte("x"))
	c, clk := newTestCache(t, b, Options{NegativeTTL: time.Minute, MetadataTTL: time.Hour})
	lookupMissing := func() {
		t.Helper()
		if _, _, err := c.lookup(context.Background(), "", "missing"); !errors.Is(err, ufs.ErrNotFound) {
			t.Fatalf("lookup missing: got %v, want not found", err)
		}
	}

	lookupMissing()
	settle(t, c) // the listing of "" prefetched after the first probe
	if got := b.Heads.Load(); got != 1 {
		t.Fatalf("HEADs after the first lookup: %d, want 1", got)
	}
	lookupMissing()
	if got := b.Heads.Load(); got != 1 {
		t.Errorf("a second lookup within NegativeTTL made a HEAD request (%d in all)", got)
	}

	// The listing is still fresh (1h) but older than NegativeTTL: a missing
	// name is asked for again, once, and the answer cached.
	clk.advance(time.Minute + time.Second)
	lookupMissing()
	lookupMissing()
	if got := b.Heads.Load(); got != 2 {
		t.Errorf("HEADs after NegativeTTL: %d, want 2", got)
	}

	// An object created meanwhile is found once the negative entry expires.
	b.Put("missing", []byte("now here"))
	clk.advance(time.Minute + time.Second)
	if de, _, err := c.lookup(context.Background(), "", "missing"); err != nil || de.size != 8 {
		t.Errorf("lookup after creation: %+v, %v", de, err)
	}
}

func TestMetadataTTL(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://t")
	old := b.Put("k", []byte("old"))
	c, clk := newTestCache(t, b, Options{MetadataTTL: 10 * time.Second})
	de, exp, err := c.lookup(context.Background(), "", "k")
	if err != nil || de.version != old.Version {
		t.Fatalf("lookup: %+v, %v", de, err)
	}
	if want := clk.now().Add(10 * time.Second); !exp.Equal(want) {
		t.Errorf("expiry: got %v, want %v", exp, want)
	}
	settle(t, c)
	updated := b.Put("k", []byte("newer"))
	clk.advance(9 * time.Second)
	if de, _, _ := c.lookup(context.Background(), "", "k"); de.version != old.Version {
		t.Errorf("within the TTL: got version %s, want the cached %s", de.version, old.Version)
	}
	clk.advance(2 * time.Second)
	if de, _, _ := c.lookup(context.Background(), "", "k"); de.version != updated.Version || de.size != 5 {
		t.Errorf("after the TTL: got %+v, want version %s size 5", de, updated.Version)
	}
}

func TestNoCaching(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://t")
	b.Put("k", []byte("x"))
	c, _ := newTestCache(t, b, Options{MetadataTTL: -1})
	for i := 0; i < 3; i++ {
		if _, _, err := c.lookup(context.Background(), "", "k"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.lookup(context.Background(), "", "nope"); !errors.Is(err, ufs.ErrNotFound) {
			t.Fatal(err)
		}
		mustList(t, c, "")
	}
	settle(t, c)
	if got := b.Heads.Load(); got != 6 {
		t.Errorf("HEADs without caching: %d, want 6 (every lookup)", got)
	}
	if items, _ := c.size(); items != 0 {
		t.Errorf("%d items cached with a negative TTL", items)
	}
}

// TestOddKeys checks each rule of doc.go on listings and lookups.
func TestOddKeys(t *testing.T) {
	long := strings.Repeat("n", 256)
	b := fuseviewtest.NewBucket("mem://t")
	for _, k := range []string{
		"ok",
		"empty//seg",        // "empty/" holds a "" name: hidden
		"dots/../escape",    // ".." name: hidden
		"dots/./here",       // "." name: hidden
		"dots/fine",         //
		long,                // 256 bytes: hidden
		"d/" + long + "/x",  // a 256-byte directory name: hidden
		"nul\x00name",       // NUL: hidden
		"both", "both/file", // file and prefix: the directory wins
		"marker/",         // marker with content: a directory
		"marker/inside",   //
		"emptydir/",       // marker only: an empty directory
		"d/" + long[:255], // 255 bytes: fine
	} {
		b.Put(k, []byte("content of "+k))
	}
	c, _ := newTestCache(t, b, Options{})

	cases := map[string][]string{
		"":          {"both/", "d/", "dots/", "empty/", "emptydir/", "marker/", "ok"},
		"empty/":    nil,
		"dots/":     {"fine"},
		"d/":        {long[:255]},
		"both/":     {"file"},
		"marker/":   {"inside"},
		"emptydir/": nil,
	}
	for dir, want := range cases {
		if got := names(mustList(t, c, dir)); !slices.Equal(got, want) {
			t.Errorf("listing of %q: got %q, want %q", dir, got, want)
		}
	}

	// Lookups follow the listing, and unrepresentable names are refused
	// before any request.
	heads := b.Heads.Load()
	for _, tc := range []struct {
		dir, name string
		dir2      bool
		missing   bool
	}{
		{"", "both", true, false},
		{"", "marker", true, false},
		{"", "emptydir", true, false},
		{"", long, false, true},
		{"", "nul\x00name", false, true},
		{"", "..", false, true},
		{"", ".", false, true},
		{"", "", false, true},
		{"dots/", "..", false, true},
		{"empty/", "", false, true},
		{"", "a/b", false, true},
	} {
		de, _, err := c.lookup(context.Background(), tc.dir, tc.name)
		if tc.missing {
			if !errors.Is(err, ufs.ErrNotFound) {
				t.Errorf("lookup %q in %q: got %+v, %v; want not found", tc.name, tc.dir, de, err)
			}
			continue
		}
		if err != nil || de.dir != tc.dir2 {
			t.Errorf("lookup %q in %q: got %+v, %v; want dir=%t", tc.name, tc.dir, de, err, tc.dir2)
		}
	}
	if got := b.Heads.Load() - heads; got != 0 {
		t.Errorf("lookups of cached or unrepresentable names made %d HEAD requests", got)
	}

	// Without a listing, the probe applies the directory-wins rule too.
	c2, _ := newTestCache(t, b, Options{})
	if de, _, err := c2.lookup(context.Background(), "", "both"); err != nil || !de.dir {
		t.Errorf("probe of both: got %+v, %v; want a directory", de, err)
	}
	if de, _, err := c2.lookup(context.Background(), "", "emptydir"); err != nil || !de.dir {
		t.Errorf("probe of emptydir: got %+v, %v; want a directory", de, err)
	}
	// A key over S3's 1024 bytes is not asked for.
	heads = b.Heads.Load()
	deep := strings.Repeat("d/", 600)
	if _, _, err := c2.lookup(context.Background(), deep, "x"); !errors.Is(err, ufs.ErrNotFound) {
		t.Errorf("lookup of a 1201-byte key: %v, want not found", err)
	}
	if b.Heads.Load() != heads {
		t.Error("lookup of a key over 1024 bytes reached the bucket")
	}
}

func TestValidPrefix(t *testing.T) {
	for p, want := range map[string]bool{
		"": true, "a/": true, "a/b/": true,
		"a": false, "/a/": false, "a//b/": false, "a/../": false, "./": false,
		strings.Repeat("x", 256) + "/": false, "a\x00/": false,
	} {
		if got := validPrefix(p); got != want {
			t.Errorf("validPrefix(%q) = %t, want %t", p, got, want)
		}
	}
	b := fuseviewtest.NewBucket("mem://t")
	if _, err := NewRoot(b, "a/../b", nopReader{}, Options{}); err == nil {
		t.Error("NewRoot accepted a prefix with ..")
	}
	r, err := NewRoot(b, "data/set", nopReader{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.prefix != "data/set/" || r.Name() != "file:///mem/t/data/set" {
		t.Errorf("root: prefix %q name %q", r.prefix, r.Name())
	}
}

func TestListingPages(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://t")
	var want []string
	for i := range 2500 {
		k := fmt.Sprintf("f%05d", i)
		b.Put("big/"+k, nil)
		want = append(want, k)
	}
	b.Put("big/sub/x", nil)
	want = append(want, "sub/")
	c, _ := newTestCache(t, b, Options{ListPageSize: 1000})
	l := mustList(t, c, "big/")
	if !l.complete || !slices.Equal(names(l), want) {
		t.Fatalf("listing: complete=%t, %d names", l.complete, len(l.entries))
	}
	if got := b.Lists.Load(); got != 3 {
		t.Errorf("LIST requests: %d, want 3 pages", got)
	}
}

func TestConcurrentListingsShareOneFetch(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://t")
	for i := range 3000 {
		b.Put(fmt.Sprintf("k%05d", i), nil)
	}
	c, _ := newTestCache(t, b, Options{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if l, err := c.listDir(context.Background(), ""); err != nil || len(l.entries) != 3000 {
				t.Errorf("listing: %v", err)
			}
		})
	}
	wg.Wait()
	if got := b.Lists.Load(); got != 3 {
		t.Errorf("8 concurrent listings made %d LIST requests, want 3 (one fetch)", got)
	}
}

func TestCacheIsBounded(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://t")
	for d := range 5 {
		for i := range 40 {
			b.Put(fmt.Sprintf("d%d/f%02d", d, i), nil)
		}
	}
	c, _ := newTestCache(t, b, Options{MaxCachedEntries: 100})
	for d := range 5 {
		mustList(t, c, fmt.Sprintf("d%d/", d))
		for i := range 30 {
			c.lookup(context.Background(), fmt.Sprintf("x%d/", d), fmt.Sprintf("n%d", i))
		}
		settle(t, c)
		if _, w := c.size(); w > 100 {
			t.Fatalf("weight %d exceeds the bound 100", w)
		}
	}
	// The most recent listing survived; the oldest was evicted.
	if c.cachedListing("d0/", c.now()) != nil {
		t.Error("the least recently used listing is still cached")
	}
}

func TestTooBigDirectoryIsStreamed(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://t")
	for i := range 250 {
		b.Put(fmt.Sprintf("huge/f%03d", i), nil)
	}
	c, _ := newTestCache(t, b, Options{MaxCachedEntries: 100, ListPageSize: 60})
	l := mustList(t, c, "huge/")
	if l.complete || len(l.entries) != 120 || l.after != "huge/f119" {
		t.Fatalf("first listing: complete=%t entries=%d after=%q; want the first 2 pages", l.complete, len(l.entries), l.after)
	}
	// Only a marker is cached; a second listing streams from the start.
	if _, w := c.size(); w != 1 {
		t.Errorf("weight after a too-big listing: %d, want 1 (the marker)", w)
	}
	l2 := mustList(t, c, "huge/")
	if l2.complete || len(l2.entries) != 0 || l2.after != "" {
		t.Errorf("second listing: %+v, want an empty stream from the start", l2)
	}
	// Lookups in it probe the bucket and start no new listing.
	lists := b.Lists.Load()
	if _, _, err := c.lookup(context.Background(), "huge/", "f200"); err != nil {
		t.Fatal(err)
	}
	settle(t, c)
	if got := b.Lists.Load() - lists; got != 1 {
		t.Errorf("lookup in a too-big directory made %d LIST requests, want 1 (the probe)", got)
	}
}

func TestInvalidate(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://t")
	b.Put("d/k", []byte("v1"))
	c, _ := newTestCache(t, b, Options{})
	mustList(t, c, "d/")
	v2 := b.Put("d/k", []byte("v2!"))
	if de, _, _ := c.lookup(context.Background(), "d/", "k"); de.version == v2.Version {
		t.Fatal("cached lookup already sees v2")
	}
	c.invalidate("d/", "k")
	if de, _, _ := c.lookup(context.Background(), "d/", "k"); de.version != v2.Version {
		t.Errorf("after invalidate: version %s, want %s", de.version, v2.Version)
	}
}

func TestBucketErrorsAreNotCached(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://t")
	b.Put("k", []byte("x"))
	b.Fail("k", fmt.Errorf("stat: %w", ufs.ErrAccessDenied))
	c, _ := newTestCache(t, b, Options{})
	if _, _, err := c.lookup(context.Background(), "", "k"); !errors.Is(err, ufs.ErrAccessDenied) {
		t.Fatalf("got %v, want access denied", err)
	}
	b.Fail("k", nil)
	if _, _, err := c.lookup(context.Background(), "", "k"); err != nil {
		t.Errorf("after the error cleared: %v", err)
	}
}

type nopReader struct{}

func (nopReader) NewReader(client.Object) *client.Reader { return nil }

// TestWalkAhead: reading a directory fetches its subdirectories' listings in
// the background, so a walk finds them cached; it does not recurse further.
func TestWalkAhead(t *testing.T) {
	b := fuseviewtest.NewBucket("mem://walk")
	for i := 0; i < 20; i++ {
		b.Put(fmt.Sprintf("d%02d/f", i), []byte("x"))
		b.Put(fmt.Sprintf("d%02d/sub/g", i), []byte("y"))
	}
	c, _ := newTestCache(t, b, Options{})
	ctx := context.Background()
	root, err := c.listDir(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	c.prefetchChildren("", root)
	deadline := time.Now().Add(5 * time.Second)
	for c.stats.ListPages.Load() < 21 {
		if time.Now().After(deadline) {
			t.Fatalf("%d listings fetched ahead, want the 20 children", c.stats.ListPages.Load()-1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	settle(t, c)
	before := c.stats.ListPages.Load()
	for i := 0; i < 20; i++ {
		if _, err := c.listDir(ctx, fmt.Sprintf("d%02d/", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.stats.ListPages.Load() - before; n != 0 {
		t.Errorf("reading 20 prefetched directories made %d LIST requests, want 0", n)
	}
	if n := c.stats.ListPages.Load(); n != 21 {
		t.Errorf("%d LIST requests in all, want 21: walk-ahead must not recurse on its own", n)
	}
}
