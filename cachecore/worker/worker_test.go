package worker

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
)

const MiB = 1 << 20

// localWorker returns a worker over a directory holding files, and that
// directory's bucket.
func localWorker(t *testing.T, files map[string][]byte) (*Worker, *ufs.Local, string) {
	t.Helper()
	return localWorkerWith(t, files, nil)
}

// localWorkerWith is localWorker with tweak applied to the worker's Config.
func localWorkerWith(t *testing.T, files map[string][]byte, tweak func(*Config)) (*Worker, *ufs.Local, string) {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	local, err := ufs.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	store, err := pagestore.Open(pagestore.Config{Dir: t.TempDir(), Capacity: 256 * MiB, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srcs := sources.New(ufs.S3Config{}, false)
	srcs.Add(local)
	cfg := Config{ID: "w", Store: store, Sources: srcs, Logger: slog.New(slog.DiscardHandler)}
	if tweak != nil {
		tweak(&cfg)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w, local, dir
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/MiB)
	}
	return b
}

func request(t *testing.T, u *ufs.Local, key string, off, n int64) Request {
	t.Helper()
	st, err := u.Stat(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return Request{Source: u.Source(), Key: key, Version: st.Version, Size: st.Size, Off: off, Len: n}
}

// TestConcurrentReadsFetchOnce: eight readers of the same cold 24 MiB range
// get the right bytes and the bucket is read once (two GETs of at most the
// default FetchBytes, 16 MiB).
func TestConcurrentReadsFetchOnce(t *testing.T) {
	data := pattern(24 * MiB)
	w, u, _ := localWorker(t, map[string][]byte{"f": data})
	req := request(t, u, "f", 0, int64(len(data)))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			var out bytes.Buffer
			if err := w.Read(context.Background(), req, &out); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(out.Bytes(), data) {
				errs <- io.ErrUnexpectedEOF
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := w.Stats().FetchedBytes.Load(); got != int64(len(data)) {
		t.Errorf("fetched %d bytes from the bucket for 8 readers of %d", got, len(data))
	}
	if got := w.Stats().Fetches.Load(); got != 2 {
		t.Errorf("%d GETs, want 2 (16 and 8 MiB)", got)
	}
}

// TestHTTP: the read endpoint's bytes and status codes.
func TestHTTP(t *testing.T) {
	data := pattern(3*MiB + 17)
	w, u, dir := localWorker(t, map[string][]byte{"f": data, "g": pattern(10)})
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	get := func(q url.Values) (*http.Response, []byte) {
		resp, err := http.Get(srv.URL + ReadPath + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	ok := request(t, u, "f", MiB-5, MiB+10)
	resp, body := get(ok.Query())
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data[MiB-5:2*MiB+5]) || resp.ContentLength != MiB+10 {
		t.Errorf("good range: %s, %d bytes", resp.Status, len(body))
	}

	// With sums=1: whole pages, each after its checksum, sent chunked
	// (room for an error trailer) and complete.
	whole := request(t, u, "f", MiB, 2*MiB+17)
	q := whole.Query()
	q.Set(SumsParam, "1")
	resp, body = get(q)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(SumsHeader) != SumsCRC32C || len(body) != 2*MiB+17+3*SumBytes ||
		resp.ContentLength != -1 || resp.Trailer.Get(StatusTrailer) != "" {
		t.Fatalf("whole pages with sums: %s, %q, %d bytes (length %d), trailer %v",
			resp.Status, resp.Header.Get(SumsHeader), len(body), resp.ContentLength, resp.Trailer)
	}
	id := whole.ID()
	for p, rest := uint32(1), body; len(rest) > 0; p++ {
		n := min(MiB, len(rest)-SumBytes)
		page := rest[SumBytes : SumBytes+n]
		if sum := binary.LittleEndian.Uint32(rest); sum != pagestore.Checksum(pagestore.Key{File: id, Page: p}, page) {
			t.Errorf("page %d: checksum %08x does not match", p, sum)
		}
		if !bytes.Equal(page, data[int(p)*MiB:int(p)*MiB+n]) {
			t.Errorf("page %d: wrong bytes", p)
		}
		rest = rest[SumBytes+n:]
	}
	q = ok.Query()
	q.Set(SumsParam, "1")
	if resp, _ := get(q); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("sums for a range within pages: %s, want 400", resp.Status)
	}

	missing := ok
	missing.Key = "nope"
	if resp, _ := get(missing.Query()); resp.StatusCode != StatusNotFound {
		t.Errorf("missing key: %s, want 404", resp.Status)
	}
	bad := ok.Query()
	bad.Set("len", "-1")
	if resp, _ := get(bad); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("negative length: %s, want 400", resp.Status)
	}
	past := ok
	past.Len = past.Size
	if resp, _ := get(past.Query()); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("range past the end: %s, want 400", resp.Status)
	}
	// g changes after its version was taken: 412, never the new bytes.
	stale := request(t, u, "g", 0, 10)
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(dir, "g"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(stale.Query()); resp.StatusCode != StatusVersionMismatch || resp.Header.Get(CauseHeader) != "bucket" {
		t.Errorf("changed object: %s %q, want 412 with the bucket as cause", resp.Status, body)
	}
}

// TestWarmAndList: warming fetches what is missing once; listings are
// served from the shared cache within their TTL.
func TestWarmAndList(t *testing.T) {
	w, u, _ := localWorker(t, map[string][]byte{"d/a": pattern(5 * MiB), "d/b": pattern(10)})
	ctx := context.Background()
	req := request(t, u, "d/a", 0, 5*MiB)
	if n, err := w.Warm(ctx, req); err != nil || n != 5*MiB {
		t.Fatalf("first warm = %d, %v; want 5 MiB fetched", n, err)
	}
	if n, err := w.Warm(ctx, req); err != nil || n != 0 {
		t.Fatalf("second warm = %d, %v; want 0", n, err)
	}
	lr := ListRequest{Source: u.Source(), Opt: ufs.ListOptions{Prefix: "d/", Delimiter: "/"}, TTL: time.Hour}
	for range 3 {
		page, err := w.List(ctx, lr)
		if err != nil || len(page.Objects) != 2 {
			t.Fatalf("list = %+v, %v", page, err)
		}
	}
	if got := w.Stats().Lists.Load(); got != 1 {
		t.Errorf("3 listings within the TTL made %d bucket listings, want 1", got)
	}
	lr.TTL = 0
	if _, err := w.List(ctx, lr); err != nil || w.Stats().Lists.Load() != 2 {
		t.Errorf("a listing with TTL 0 must go to the bucket (%d listings, %v)", w.Stats().Lists.Load(), err)
	}
}

// TestCached: Cached counts the bytes of a range whose pages are stored,
// and fetches nothing.
func TestCached(t *testing.T) {
	w, u, _ := localWorker(t, map[string][]byte{"c": pattern(5*MiB + 100)})
	ctx := context.Background()
	whole := request(t, u, "c", 0, 5*MiB+100)
	if n, err := w.Cached(context.Background(), whole); err != nil || n != 0 {
		t.Fatalf("cold: %d, %v", n, err)
	}
	if _, err := w.Warm(ctx, request(t, u, "c", MiB, 2*MiB)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ off, n, want int64 }{
		{0, 5*MiB + 100, 2 * MiB},      // pages 1 and 2
		{MiB / 2, MiB, MiB / 2},        // half of page 0 (cold), half of page 1
		{3 * MiB, 2*MiB + 100, 0},      // pages 3..5: cold
		{MiB + 10, 10, 10},             // inside a cached page
		{2*MiB - 5, MiB + 10, MiB + 5}, // the end of page 1, all of page 2, 5 bytes of page 3
	} {
		if n, err := w.Cached(context.Background(), request(t, u, "c", tc.off, tc.n)); err != nil || n != tc.want {
			t.Errorf("Cached(%d, %d) = %d, %v; want %d", tc.off, tc.n, n, err, tc.want)
		}
	}
	if f := w.Stats().Fetches.Load(); f != 1 {
		t.Errorf("%d fetches, want 1 (the warm): Cached must fetch nothing", f)
	}
}
