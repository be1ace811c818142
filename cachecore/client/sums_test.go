package client

import (
	"errors"
	"testing"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/worker"
)

// TestChecksumsCheckedOnce: a page from another worker is checked against
// the checksum that came with it; one from the in-process worker, whose
// store checked it as it read it, is not summed a second time.
func TestChecksumsCheckedOnce(t *testing.T) {
	key := pagestore.Key{File: objid.Of(objid.File("/s"), "k", "v", 1<<20), Page: 0}
	page := []byte("the bytes of a page")
	good := pagestore.Checksum(key, page)
	remote := &pageWriter{u: worker.PagesOf(1 << 20)}
	if err := remote.verify(key, page, good); err != nil {
		t.Fatalf("a page with its own checksum: %v", err)
	}
	if err := remote.verify(key, page, good^1); !errors.Is(err, pagestore.ErrChecksum) {
		t.Fatalf("a page with another checksum from a remote worker: %v, want ErrChecksum", err)
	}
	other := pagestore.Key{File: key.File, Page: 1}
	if err := remote.verify(other, page, good); !errors.Is(err, pagestore.ErrChecksum) {
		t.Fatalf("a page's checksum offered for another page: %v, want ErrChecksum", err)
	}
	local := &pageWriter{u: worker.PagesOf(1 << 20), checked: true}
	if err := local.verify(key, page, good^1); err != nil {
		t.Fatalf("a page from the in-process worker was summed again: %v", err)
	}
}
