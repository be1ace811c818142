package client_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/routing"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/cachecore/worker"
)

// flipWriter flips one bit of the body once it has passed after bytes.
type flipWriter struct {
	http.ResponseWriter
	after, seen int64
	flipped     *atomic.Int64
}

func (f *flipWriter) Write(p []byte) (int, error) {
	if f.seen <= f.after && f.after < f.seen+int64(len(p)) {
		q := append([]byte(nil), p...)
		q[f.after-f.seen] ^= 0x10
		f.flipped.Add(1)
		p = q
	}
	f.seen += int64(len(p))
	return f.ResponseWriter.Write(p)
}

// TestPagesCarryChecksums: a worker whose responses are damaged on the way
// (one bit of each flipped after the first page) is caught by the page
// checksums: the client drops the damaged page, reads it from the next
// worker, and returns the bucket's bytes.
func TestPagesCarryChecksums(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 6*MiB/16)
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	local, err := ufs.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	newWorker := func(id string) *worker.Worker {
		store, err := pagestore.Open(pagestore.Config{Dir: t.TempDir(), Capacity: 64 * MiB, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		srcs := sources.New(ufs.S3Config{}, false)
		srcs.Add(local)
		w, err := worker.New(worker.Config{ID: id, Store: store, Sources: srcs, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		return w
	}
	var flipped atomic.Int64
	bad := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		newWorker("bad").Handler().ServeHTTP(&flipWriter{ResponseWriter: rw, after: MiB + 100, flipped: &flipped}, r)
	}))
	t.Cleanup(bad.Close)
	good := httptest.NewServer(newWorker("good").Handler())
	t.Cleanup(good.Close)
	// The object's identity (its directory is new each run) decides which
	// worker owns its first chunk: give that one the damaging address.
	st0, err := local.Stat(context.Background(), "f")
	if err != nil {
		t.Fatal(err)
	}
	id := client.Object{Source: local.Source(), Key: "f", Version: st0.Version, Size: st0.Size}.ID()
	tab, err := routing.New([]routing.Worker{{ID: "w1"}, {ID: "w2"}})
	if err != nil {
		t.Fatal(err)
	}
	owner, other := "w1", "w2"
	if tab.Workers()[tab.Owner(id.ChunkHash(0))].ID == "w2" {
		owner, other = "w2", "w1"
	}
	members, err := membership.Static(
		membership.Member{ID: owner, Addr: strings.TrimPrefix(bad.URL, "http://")},
		membership.Member{ID: other, Addr: strings.TrimPrefix(good.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	srcs := sources.New(ufs.S3Config{}, false)
	srcs.Add(local)
	c, err := client.New(client.Config{Members: members, Sources: srcs, HotBytes: -1, ChunkSize: 2 * MiB, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	st, err := local.Stat(context.Background(), "f")
	if err != nil {
		t.Fatal(err)
	}
	obj := client.Object{Source: local.Source(), Key: "f", Version: st.Version, Size: st.Size}
	got := make([]byte, len(data))
	if _, err := c.ReadAt(context.Background(), obj, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("wrong bytes returned")
	}
	stats := c.Stats()
	t.Logf("%d responses damaged, %d bad pages caught, %d failovers, %d bucket reads",
		flipped.Load(), stats.BadSums.Load(), stats.Failovers.Load(), stats.BucketReads.Load())
	if flipped.Load() == 0 {
		t.Fatal("the damaging worker served nothing: the test tested nothing")
	}
	if stats.BadSums.Load() != flipped.Load() {
		t.Errorf("%d damaged pages caught, %d damaged", stats.BadSums.Load(), flipped.Load())
	}
}
