package ufs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/tests/testenv"
)

// fixture is a backend under test and a way to write objects into it behind
// its back.
type fixture struct {
	u   ufs.UFS
	put func(key string, data []byte) error
}

func (f fixture) mustPut(t *testing.T, key string, data []byte) {
	t.Helper()
	if err := f.put(key, data); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// testContract checks the behaviour every backend must share. Each subtest
// works under its own prefix.
func testContract(t *testing.T, f fixture) {
	t.Run("Stat", func(t *testing.T) { testStat(t, f) })
	t.Run("ListPaging", func(t *testing.T) { testListPaging(t, f) })
	t.Run("ListTree", func(t *testing.T) { testListTree(t, f) })
	t.Run("ReadRange", func(t *testing.T) { testReadRange(t, f) })
	t.Run("VersionChange", func(t *testing.T) { testVersionChange(t, f) })
	t.Run("Missing", func(t *testing.T) { testMissing(t, f) })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testStat(t *testing.T, f fixture) {
	ctx := ctxT(t)
	f.mustPut(t, "stat/a.bin", testenv.RandomBytes(12345, 1))
	o, err := f.u.Stat(ctx, "stat/a.bin")
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if o.Key != "stat/a.bin" || o.Size != 12345 || o.Version == "" || strings.Contains(o.Version, `"`) {
		t.Errorf("stat = %+v, want key stat/a.bin, size 12345, a version without quotes", o)
	}
	if d := time.Since(o.ModTime); d < -time.Minute || d > time.Minute {
		t.Errorf("ModTime %v is not about now", o.ModTime)
	}
	again, err := f.u.Stat(ctx, "stat/a.bin")
	if err != nil || again.Version != o.Version {
		t.Errorf("second stat: %+v, %v; want the same version %s", again, err, o.Version)
	}
}

// putMany writes keys in parallel with tiny contents.
func putMany(t *testing.T, f fixture, keys []string) {
	var wg sync.WaitGroup
	ch := make(chan string)
	for range 16 {
		wg.Go(func() {
			for k := range ch {
				f.mustPut(t, k, []byte(k))
			}
		})
	}
	for _, k := range keys {
		ch <- k
	}
	close(ch)
	wg.Wait()
}

// listAll pages through a listing and returns every page.
func listAll(t *testing.T, u ufs.UFS, opt ufs.ListOptions) []ufs.ListPage {
	t.Helper()
	var pages []ufs.ListPage
	for {
		p, err := u.List(ctxT(t), opt)
		if err != nil {
			t.Fatalf("list %+v: %v", opt, err)
		}
		pages = append(pages, p)
		if p.Next == "" {
			return pages
		}
		if p.Next <= opt.StartAfter {
			t.Fatalf("list %+v: Next %q does not advance", opt, p.Next)
		}
		if len(pages) > 10000 {
			t.Fatal("listing does not end")
		}
		opt.StartAfter = p.Next
	}
}

// entries returns the keys and prefixes of pages in one sorted sequence,
// prefixes marked with a trailing "/" already.
func entries(pages []ufs.ListPage) []string {
	var out []string
	for _, p := range pages {
		var e []string
		for _, o := range p.Objects {
			e = append(e, o.Key)
		}
		e = append(e, p.Prefixes...)
		slices.Sort(e)
		out = append(out, e...)
	}
	return out
}

func testListPaging(t *testing.T, f fixture) {
	var keys []string
	for i := range 2500 {
		keys = append(keys, fmt.Sprintf("page/k%05d", i))
	}
	putMany(t, f, keys)
	for _, delim := range []string{"", "/"} {
		pages := listAll(t, f.u, ufs.ListOptions{Prefix: "page/", Delimiter: delim, MaxKeys: 1000})
		var sizes []int
		for _, p := range pages {
			sizes = append(sizes, len(p.Objects))
			if len(p.Prefixes) != 0 {
				t.Errorf("delimiter %q: unexpected prefixes %q", delim, p.Prefixes)
			}
			if p.Next != "" && p.Next != p.Objects[len(p.Objects)-1].Key {
				t.Errorf("delimiter %q: Next %q is not the last key of the page", delim, p.Next)
			}
		}
		if !slices.Equal(sizes, []int{1000, 1000, 500}) {
			t.Errorf("delimiter %q: page sizes %v, want [1000 1000 500]", delim, sizes)
		}
		if got := entries(pages); !slices.Equal(got, keys) {
			t.Errorf("delimiter %q: listed %d keys, want the %d put, in order", delim, len(got), len(keys))
		}
		for _, o := range pages[0].Objects[:3] {
			if o.Size != int64(len(o.Key)) || o.Version == "" || o.ModTime.IsZero() || strings.Contains(o.Version, `"`) {
				t.Errorf("listed object %+v: want size, version without quotes and mtime", o)
			}
		}
	}
}

func testListTree(t *testing.T, f fixture) {
	// Byte order: '-' < '.' < '/', so tree/a-b < tree/a.txt < tree/a/1.
	keys := []string{"tree/a-b", "tree/a.txt", "tree/a/1", "tree/a/2", "tree/b/x/1", "tree/c", "tree/d.txt"}
	putMany(t, f, keys)
	for _, tc := range []struct {
		prefix, delim string
		want          []string // keys and prefixes in order
	}{
		{"tree/", "/", []string{"tree/a-b", "tree/a.txt", "tree/a/", "tree/b/", "tree/c", "tree/d.txt"}},
		{"tree/a", "/", []string{"tree/a-b", "tree/a.txt", "tree/a/"}},
		{"tree/a/", "/", []string{"tree/a/1", "tree/a/2"}},
		{"tree/b/", "/", []string{"tree/b/x/"}},
		{"tree/", "", keys},
		{"tree/a", "", []string{"tree/a-b", "tree/a.txt", "tree/a/1", "tree/a/2"}},
		{"tree/b", "", []string{"tree/b/x/1"}},
		{"tree/nothing/", "/", nil},
		{"tree/nothing/", "", nil},
	} {
		for _, maxKeys := range []int{0, 1, 2, 4} {
			pages := listAll(t, f.u, ufs.ListOptions{Prefix: tc.prefix, Delimiter: tc.delim, MaxKeys: maxKeys})
			if got := entries(pages); !slices.Equal(got, tc.want) {
				t.Errorf("list prefix %q delimiter %q max %d: %q, want %q", tc.prefix, tc.delim, maxKeys, got, tc.want)
			}
			for _, p := range pages {
				if n := len(p.Objects) + len(p.Prefixes); maxKeys > 0 && n > maxKeys {
					t.Errorf("list prefix %q max %d: a page of %d", tc.prefix, maxKeys, n)
				}
			}
		}
	}
	// Resuming after any entry of a delimited listing gives the rest.
	all := []string{"tree/a-b", "tree/a.txt", "tree/a/", "tree/b/", "tree/c", "tree/d.txt"}
	for i, after := range all {
		p, err := f.u.List(ctxT(t), ufs.ListOptions{Prefix: "tree/", Delimiter: "/", StartAfter: after})
		if err != nil {
			t.Fatal(err)
		}
		if got := entries([]ufs.ListPage{p}); !slices.Equal(got, all[i+1:]) {
			t.Errorf("list tree/ after %q: %q, want %q", after, got, all[i+1:])
		}
	}
}

func readAll(t *testing.T, u ufs.UFS, key, version string, off, n int64) ([]byte, error) {
	t.Helper()
	rc, err := u.ReadRange(ctxT(t), key, version, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func testReadRange(t *testing.T, f fixture) {
	const size = 3<<20 + 17
	data := testenv.RandomBytes(size, 2)
	f.mustPut(t, "range/blob", data)
	o, err := f.u.Stat(ctxT(t), "range/blob")
	if err != nil {
		t.Fatal(err)
	}
	check := func(off, n int64) {
		t.Helper()
		got, err := readAll(t, f.u, "range/blob", o.Version, off, n)
		end := min(off+n, size)
		var want []byte
		if off < size {
			want = data[off:end]
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read [%d,+%d): %d bytes, %v; want %d bytes equal to the object's", off, n, len(got), err, len(want))
		}
	}
	for _, r := range [][2]int64{{0, size}, {0, 1}, {size - 1, 1}, {size - 1, 100}, {size, 10}, {size + 100, 10}, {5, 0}, {1 << 20, 1 << 20}} {
		check(r[0], r[1])
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100 {
		check(rng.Int64N(size+1), rng.Int64N(1<<20))
	}
	for _, bad := range [][2]int64{{-1, 10}, {0, -1}} {
		if _, err := f.u.ReadRange(ctxT(t), "range/blob", o.Version, bad[0], bad[1]); err == nil {
			t.Errorf("read [%d,+%d): no error", bad[0], bad[1])
		}
	}
	if _, err := f.u.ReadRange(ctxT(t), "range/blob", "", 0, 10); err == nil {
		t.Error("read without a version: no error")
	}

	f.mustPut(t, "range/empty", nil)
	e, err := f.u.Stat(ctxT(t), "range/empty")
	if err != nil || e.Size != 0 {
		t.Fatalf("stat of an empty object: %+v, %v", e, err)
	}
	if got, err := readAll(t, f.u, "range/empty", e.Version, 0, 10); err != nil || len(got) != 0 {
		t.Errorf("read of an empty object: %q, %v", got, err)
	}
}

func testVersionChange(t *testing.T, f fixture) {
	v1data := testenv.RandomBytes(1000, 5)
	f.mustPut(t, "ver/obj", v1data)
	v1, err := f.u.Stat(ctxT(t), "ver/obj")
	if err != nil {
		t.Fatal(err)
	}
	v2data := testenv.RandomBytes(100, 6)
	f.mustPut(t, "ver/obj", v2data)
	v2, err := f.u.Stat(ctxT(t), "ver/obj")
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version == v2.Version {
		t.Fatalf("overwrite kept version %s", v1.Version)
	}
	// [50,+10) exists in both; [500,+10) only in the old version: it must
	// still be a version mismatch, not an empty read past the end.
	for _, off := range []int64{0, 50, 500} {
		got, err := readAll(t, f.u, "ver/obj", v1.Version, off, 10)
		if !errors.Is(err, ufs.ErrVersionMismatch) {
			t.Errorf("read [%d,+10) of the old version: %q, %v; want ErrVersionMismatch", off, got, err)
		}
	}
	got, err := readAll(t, f.u, "ver/obj", v2.Version, 0, 1000)
	if err != nil || !bytes.Equal(got, v2data) {
		t.Errorf("read of the new version: %d bytes, %v", len(got), err)
	}
}

func testMissing(t *testing.T, f fixture) {
	_, err := f.u.Stat(ctxT(t), "missing/key")
	if !errors.Is(err, ufs.ErrNotFound) {
		t.Errorf("stat of a missing key: %v, want ErrNotFound", err)
	}
	if err != nil && (!strings.Contains(err.Error(), "stat ") || !strings.Contains(err.Error(), f.u.Source().String()+"/missing/key")) {
		t.Errorf("error %q should say it was a stat of %s/missing/key", err, f.u.Source())
	}
	if _, err := readAll(t, f.u, "missing/key", "abc", 0, 10); !errors.Is(err, ufs.ErrNotFound) {
		t.Errorf("read of a missing key: %v, want ErrNotFound", err)
	}
}
