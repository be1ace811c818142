package fuseviewtest

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"hoard.dev/hoard/cachecore/ufs"
)

// listAll pages through a listing with pages of n and returns its entries
// (prefixes end with "/") and the number of pages.
func listAll(t *testing.T, b *Bucket, prefix, delim string, n int) ([]string, int) {
	t.Helper()
	var out []string
	pages := 0
	opt := ufs.ListOptions{Prefix: prefix, Delimiter: delim, MaxKeys: n}
	for {
		page, err := b.List(context.Background(), opt)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		var got []string
		for _, o := range page.Objects {
			got = append(got, o.Key)
		}
		got = append(got, page.Prefixes...)
		slices.Sort(got)
		out = append(out, got...)
		if page.Next == "" {
			return out, pages
		}
		opt.StartAfter = page.Next
	}
}

func TestBucketList(t *testing.T) {
	b := NewBucket("mem://t")
	for _, k := range []string{"a", "a/1", "a/2", "a-b", "b/", "b/x/y", "c", "d//e"} {
		b.Put(k, []byte(k))
	}
	want := []string{"a", "a-b", "a/", "b/", "c", "d/"}
	for _, n := range []int{1, 2, 1000} {
		got, pages := listAll(t, b, "", "/", n)
		if !slices.Equal(got, want) {
			t.Errorf("pages of %d: got %q, want %q", n, got, want)
		}
		if n == 1 && pages != len(want) {
			t.Errorf("pages of 1: %d pages, want %d", pages, len(want))
		}
	}
	if got, _ := listAll(t, b, "b/", "/", 1); !slices.Equal(got, []string{"b/", "b/x/"}) {
		t.Errorf("b/: %q", got)
	}
	if got, _ := listAll(t, b, "d/", "/", 10); !slices.Equal(got, []string{"d//"}) {
		t.Errorf("d/: %q", got)
	}
	if got, _ := listAll(t, b, "", "", 3); len(got) != 8 {
		t.Errorf("recursive listing: %q", got)
	}
}

func TestBucketReadAndFailures(t *testing.T) {
	b := NewBucket("mem://t")
	o := b.Put("k", []byte("0123456789"))
	r, err := b.ReadRange(context.Background(), "k", o.Version, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); string(got) != "3456" {
		t.Errorf("range: %q", got)
	}
	if _, err := b.ReadRange(context.Background(), "k", "other", 0, 1); !errors.Is(err, ufs.ErrVersionMismatch) {
		t.Errorf("other version: %v", err)
	}
	b.Fail("k", ufs.ErrAccessDenied)
	if _, err := b.Stat(context.Background(), "k"); !errors.Is(err, ufs.ErrAccessDenied) {
		t.Errorf("failing stat: %v", err)
	}
	b.Fail("k", nil)
	release := b.Stall("k")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Stat(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("stalled stat with a cancelled context: %v", err)
	}
	release()
	if _, err := b.Stat(context.Background(), "k"); err != nil {
		t.Errorf("after release: %v", err)
	}
	b.Delete("k")
	if _, err := b.Stat(context.Background(), "k"); !errors.Is(err, ufs.ErrNotFound) {
		t.Errorf("deleted: %v", err)
	}
}
