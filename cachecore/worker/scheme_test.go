package worker

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/tests/testenv"
)

// TestHTTPEndpointFetchedOverHTTP (issue 15, item 3): a client that reads a
// bucket at http://host:port sends a source that carries the scheme, and a
// worker opening it on request fetches over plain HTTP, whatever its own
// defaults say (before, the name lost the scheme and the worker went out
// over HTTPS: "server gave HTTP response to HTTPS client", and every read
// bypassed the cache).
func TestHTTPEndpointFetchedOverHTTP(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "data")
	data := pattern(3 * MiB)
	m.Put(t, "data", "obj", data)

	cfg := m.S3Config()
	cfg.Endpoint, cfg.Insecure = "http://"+m.Endpoint(), false // the scheme is in the endpoint
	bucket, err := ufs.NewS3(context.Background(), "data", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := bucket.Source().String(); got != "s3+http://"+m.Endpoint()+"/data" {
		t.Fatalf("source = %s, want the http scheme in it", got)
	}
	st, err := bucket.Stat(context.Background(), "obj")
	if err != nil {
		t.Fatal(err)
	}

	// The worker knows only credentials: no endpoint, no --s3-insecure.
	store, err := pagestore.Open(pagestore.Config{Dir: t.TempDir(), Capacity: 64 * MiB, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	defaults := ufs.S3Config{AccessKey: m.AccessKey(), SecretKey: m.SecretKey(), PathStyle: true}
	w, err := New(Config{ID: "w", Store: store, Sources: sources.New(defaults, true), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)

	req := Request{Source: bucket.Source(), Key: "obj", Version: st.Version, Size: st.Size, Len: st.Size}
	resp, err := http.Get(srv.URL + ReadPath + "?" + req.Query().Encode())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("read through the worker: %s, %d bytes (%.200q)", resp.Status, len(got), got)
	}
	if s := w.Status(); s.FetchErrors != 0 || s.FetchedBytes != int64(len(data)) {
		t.Errorf("worker fetched %d bytes with %d errors; want %d bytes, no errors", s.FetchedBytes, s.FetchErrors, len(data))
	}
	w.Close() // flushes the write-behind queue
	if _, pages := store.Usage(); pages != 3 {
		t.Errorf("%d pages cached, want 3", pages)
	}
}
