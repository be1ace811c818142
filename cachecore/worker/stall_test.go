package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/tests/testenv"
)

// TestHungBucketFailsAtStall: a bucket that stops sending in the middle of
// a GET, or never answers one, fails the read once it has sent nothing for
// FetchStall (ufs.ErrStalled), not at FetchTimeout; nothing of the stalled
// GET is cached, and the object is read whole once the bucket answers again.
func TestHungBucketFailsAtStall(t *testing.T) {
	const stallFor = 1500 * time.Millisecond
	w, proxy, req, data := hungBucketWorker(t, stallFor)

	for _, f := range []struct {
		name  string
		fault testenv.ProxyFault
	}{
		{"stops after 300 KiB", testenv.ProxyFault{StallAfter: 300 << 10}},
		{"never answers", testenv.ProxyFault{Delay: time.Hour}},
	} {
		proxy.SetFault(f.fault)
		start := time.Now()
		var out bytes.Buffer
		err := w.Read(context.Background(), req, &out)
		took := time.Since(start)
		if !errors.Is(err, ufs.ErrStalled) {
			t.Fatalf("bucket %s: read returned %v, want ufs.ErrStalled", f.name, err)
		}
		// The GET is given up after stallFor without a byte; the default
		// FetchTimeout (2 min) would have held it far longer.
		if took > 30*time.Second {
			t.Errorf("bucket %s: the read failed after %v, want about %v", f.name, took, stallFor)
		}
		if out.Len() != 0 {
			t.Errorf("bucket %s: %d bytes written before the failure, want none (the first page never completed)", f.name, out.Len())
		}
	}
	proxy.SetFault(testenv.ProxyFault{})
	var out bytes.Buffer
	if err := w.Read(context.Background(), req, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("once the bucket answers again: %v, %d bytes (want the object's %d)", err, out.Len(), len(data))
	}
	if s := w.Status(); s.FetchedBytes != int64(len(data)) {
		t.Errorf("fetched %d bytes in all, want the object's %d once (nothing of a stalled GET kept)", s.FetchedBytes, len(data))
	}
}

// hungBucketWorker is a worker with FetchStall stall that reads a bucket
// holding one object of 4 MiB + 7 (data; req reads it whole) through proxy.
func hungBucketWorker(t *testing.T, stall time.Duration) (*Worker, *testenv.CountingProxy, Request, []byte) {
	t.Helper()
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "data")
	data := testenv.RandomBytes(4*MiB+7, 5)
	m.Put(t, "data", "obj", data)
	proxy := testenv.NewCountingProxy(t, m.Endpoint())

	cfg := m.S3Config()
	cfg.Endpoint, cfg.Insecure = "http://"+proxy.Endpoint(), false
	bucket, err := ufs.NewS3(context.Background(), "data", cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := bucket.Stat(context.Background(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	store, err := pagestore.Open(pagestore.Config{Dir: t.TempDir(), Capacity: 64 * MiB, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srcs := sources.New(ufs.S3Config{}, false)
	srcs.Add(bucket)
	w, err := New(Config{ID: "w", Store: store, Sources: srcs, FetchStall: stall, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w, proxy, Request{Source: bucket.Source(), Key: "obj", Version: st.Version, Size: st.Size, Len: st.Size}, data
}

// TestStallAfterFirstPagesSaidInTrailer: a bucket that hangs after the
// worker sent a framed response's first page ends the response there,
// cleanly, with a trailer that says the bucket failed (502, CauseBucket),
// as the status would have before the first byte; a client then does not
// take the worker for failed.
func TestStallAfterFirstPagesSaidInTrailer(t *testing.T) {
	w, proxy, req, data := hungBucketWorker(t, time.Second)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	proxy.SetFault(testenv.ProxyFault{StallAfter: MiB + MiB/2})

	q := req.Query()
	q.Set(SumsParam, "1")
	resp, err := http.Get(srv.URL + ReadPath + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("the response was cut (%v) after %d bytes, want a clean end with a trailer", err, len(body))
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 {
		t.Fatalf("status %d, length %d; want 200, sent chunked", resp.StatusCode, resp.ContentLength)
	}
	if want := SumBytes + MiB; len(body) != want || !bytes.Equal(body[SumBytes:], data[:MiB]) {
		t.Errorf("body of %d bytes, want the first page framed (%d)", len(body), want)
	}
	if got := resp.Trailer.Get(StatusTrailer); got != strconv.Itoa(http.StatusBadGateway) {
		t.Errorf("trailer %s = %q, want 502", StatusTrailer, got)
	}
	if got := resp.Trailer.Get(CauseHeader); got != CauseBucket {
		t.Errorf("trailer %s = %q, want %q", CauseHeader, got, CauseBucket)
	}
	if got := resp.Trailer.Get(ErrorTrailer); !strings.Contains(got, ufs.ErrStalled.Error()) {
		t.Errorf("trailer %s = %q, want the stall named", ErrorTrailer, got)
	}

	// Without a fault, a framed response carries no error trailer.
	proxy.SetFault(testenv.ProxyFault{})
	resp, err = http.Get(srv.URL + ReadPath + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil || len(body) != len(data)+5*SumBytes || resp.Trailer.Get(StatusTrailer) != "" {
		t.Errorf("whole read: %v, %d bytes, trailer %v", err, len(body), resp.Trailer)
	}
}

// TestCauseOf: the bucket is named as the cause of its own failures only
// where the worker cannot tell otherwise; a bad request or a closing worker
// is not the bucket's.
func TestCauseOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("read: %w", ufs.ErrStalled), CauseBucket},
		{fmt.Errorf("read: %w", ufs.ErrUnavailable), CauseBucket},
		{fmt.Errorf("read: %w", ErrStoreChecksum), CauseChecksum},
		{fmt.Errorf("%w: negative length", ErrBadRequest), ""},
		{fmt.Errorf("fetch: %w", ErrClosed), ""},
	} {
		if got := CauseOf(c.err); got != c.want {
			t.Errorf("CauseOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
