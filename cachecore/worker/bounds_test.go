package worker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/ufs"
)

// readWithin runs w.Read and fails the test if it does not return within d
// (the old read loop spun forever on a short page).
func readWithin(t *testing.T, w *Worker, req Request, d time.Duration) ([]byte, error) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	go func() {
		var out bytesBuffer
		err := w.Read(ctx, req, &out)
		ch <- result{out.b, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-time.After(d + 5*time.Second):
		t.Fatalf("read of %+v did not return within %s: it spins", req, d)
		return nil, nil
	}
}

type bytesBuffer struct{ b []byte }

func (b *bytesBuffer) Write(p []byte) (int, error) { b.b = append(b.b, p...); return len(p), nil }

// TestClientSizeIsNotTrusted rebuilds finding 3 of issue 11: a read that
// claims a smaller size is refused (the store says otherwise) and caches
// nothing; correct reads after it get the whole object and do not spin.
func TestClientSizeIsNotTrusted(t *testing.T) {
	data := pattern(3*MiB + 5000)
	w, u, _ := localWorker(t, map[string][]byte{"f": data})
	good := request(t, u, "f", 0, int64(len(data)))
	short := good
	short.Size, short.Len = good.Size-100, good.Size-100
	if _, err := readWithin(t, w, short, 10*time.Second); !errors.Is(err, ufs.ErrVersionMismatch) {
		t.Fatalf("read with a smaller size: %v, want ErrVersionMismatch", err)
	}
	got, err := readWithin(t, w, good, 10*time.Second)
	if err != nil || string(got) != string(data) {
		t.Fatalf("correct read after the short one: %d bytes, %v", len(got), err)
	}
	w.Close()
	if _, pages := w.Store().Usage(); pages != 4 {
		t.Errorf("%d pages cached, want the 4 of the real object only", pages)
	}
}

// TestShortCachedPageRefused: a page in the store whose length disagrees
// with the object's size is dropped and refetched within the same read,
// never served short and never a spin.
func TestShortCachedPageRefused(t *testing.T) {
	data := pattern(2 * MiB)
	w, u, _ := localWorker(t, map[string][]byte{"f": data})
	req := request(t, u, "f", 0, int64(len(data)))
	k := pagestore.Key{File: req.ID(), Page: 1}
	if err := w.Store().Put(k, data[MiB:MiB+100]); err != nil {
		t.Fatal(err)
	}
	got, err := readWithin(t, w, req, 10*time.Second)
	if err != nil || string(got) != string(data) {
		t.Fatalf("read with a short page cached: %d bytes, %v; want the object's %d", len(got), err, len(data))
	}
	w.Close() // waits for the pages being written
	buf := w.Store().NewBuffer()
	if n, ok := w.Store().Get(k, buf); !ok || n != MiB {
		t.Errorf("page 1 after the read: cached %v, %d bytes; want the whole page fetched again", ok, n)
	}
	if s := w.Status(); s.FetchedBytes != int64(len(data)) {
		t.Errorf("fetched %d bytes, want each page once (%d)", s.FetchedBytes, len(data))
	}
}

// TestOversizedRequestsRefused rebuilds finding 4 of issue 11: ranges past
// one chunk, sizes past the largest object and offset+length overflows are
// refused with 400 before any page is claimed.
func TestOversizedRequestsRefused(t *testing.T) {
	w, u, _ := localWorker(t, map[string][]byte{"f": pattern(MiB)})
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	base := request(t, u, "f", 0, MiB)
	before := runtime.NumGoroutine()
	for name, q := range map[string]func(url.Values){
		"256 GiB range": func(q url.Values) {
			q.Set("size", strconv.FormatInt(256<<30, 10))
			q.Set("len", strconv.FormatInt(256<<30, 10))
		},
		"size 2^52": func(q url.Values) {
			q.Set("size", strconv.FormatInt(1<<52, 10))
			q.Set("len", strconv.FormatInt(32<<20, 10))
		},
		"off+len wraps": func(q url.Values) {
			q.Set("size", "100")
			q.Set("off", strconv.FormatInt(1<<62, 10))
			q.Set("len", strconv.FormatInt(1<<62, 10))
		},
		"off+len wraps 2": func(q url.Values) {
			q.Set("size", "100")
			q.Set("off", "50")
			q.Set("len", strconv.FormatInt(1<<63-10, 10))
		},
		"off past size": func(q url.Values) { q.Set("size", "100"); q.Set("off", "101"); q.Set("len", "0") },
		"long key":      func(q url.Values) { q.Set("key", string(make([]byte, 2000))) },
		"bad source":    func(q url.Values) { q.Set("src", "s3://host/bucket") },
	} {
		query := base.Query()
		q(query)
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			path := ReadPath
			if method == http.MethodPost {
				path = WarmPath
			}
			req, _ := http.NewRequest(method, srv.URL+path+"?"+query.Encode(), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s %s: %s, want 400", method, name, resp.Status)
			}
		}
	}
	if n := runtime.NumGoroutine(); n > before+20 {
		t.Errorf("goroutines grew from %d to %d", before, n)
	}
	if s := w.Status(); s.Fetches != 0 {
		t.Errorf("%d fetches for refused requests", s.Fetches)
	}
}

func TestValidateBounds(t *testing.T) {
	ok := Request{Source: mustSource(t), Key: "k", Version: "v", Size: MaxObjectSize, Off: MaxObjectSize - MaxRequestBytes, Len: MaxRequestBytes}
	if err := ok.Validate(); err != nil {
		t.Fatalf("largest request refused: %v", err)
	}
	for name, r := range map[string]Request{
		"len over a chunk": {Source: ok.Source, Key: "k", Version: "v", Size: 1 << 30, Len: MaxRequestBytes + 1},
		"size over 5 TiB":  {Source: ok.Source, Key: "k", Version: "v", Size: MaxObjectSize + 1, Len: 1},
		"wrap":             {Source: ok.Source, Key: "k", Version: "v", Size: 10, Off: 1<<63 - 1, Len: 1},
	} {
		if err := r.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
