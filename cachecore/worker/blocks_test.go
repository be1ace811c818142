package worker

import (
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/pagestore"
)

// TestBlocksOverHTTP: a read of blocks over HTTP fetches only its blocks,
// frames each with the checksum of its own key and bytes, serves the same
// blocks again without a fetch, and serves blocks of a page cached whole
// from that page. Ranges that are not whole blocks, and unknown units, are
// refused.
func TestBlocksOverHTTP(t *testing.T) {
	data := pattern(4*MiB + 5000)
	w, u, _ := localWorker(t, map[string][]byte{"f": data})
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	get := func(req Request) (*http.Response, []byte) {
		t.Helper()
		q := req.Query()
		q.Set(SumsParam, "1")
		resp, err := http.Get(srv.URL + ReadPath + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	// checkFramed checks the blocks of a framed answer against data.
	checkFramed := func(req Request, body []byte) {
		t.Helper()
		id := req.ID()
		for pos := req.Off; pos < req.Off+req.Len; {
			n := min(int64(BlockBytes), req.Size-pos)
			if int64(len(body)) < SumBytes+n {
				t.Fatalf("answer cut at %d", pos)
			}
			sum, blk := binary.LittleEndian.Uint32(body), body[SumBytes:SumBytes+n]
			k := BlockUnits.Key(id, pos/BlockBytes)
			if pagestore.Checksum(k, blk) != sum {
				t.Fatalf("block at %d: checksum does not match its key and bytes", pos)
			}
			if string(blk) != string(data[pos:pos+n]) {
				t.Fatalf("block at %d: wrong bytes", pos)
			}
			body, pos = body[SumBytes+n:], pos+n
		}
		if len(body) != 0 {
			t.Fatalf("%d bytes after the last block", len(body))
		}
	}

	// Three blocks across the boundary of pages 0 and 1.
	req := request(t, u, "f", MiB-BlockBytes, 3*BlockBytes)
	req.Blocks = true
	resp, body := get(req)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(UnitHeader) != UnitBlock {
		t.Fatalf("read of blocks: %s, unit %q: %s", resp.Status, resp.Header.Get(UnitHeader), body)
	}
	checkFramed(req, body)
	if f := w.Stats().FetchedBytes.Load(); f != 3*BlockBytes {
		t.Errorf("fetched %d bytes for 3 blocks, want %d", f, 3*BlockBytes)
	}
	_, body = get(req)
	checkFramed(req, body)
	if f := w.Stats().FetchedBytes.Load(); f != 3*BlockBytes {
		t.Errorf("the same blocks again fetched %d bytes more", f-3*BlockBytes)
	}

	// The last page cached whole (a page read), then blocks of it up to
	// the object's end: served from the page, nothing fetched.
	page := request(t, u, "f", 4*MiB, 5000)
	if _, err := readWithin(t, w, page, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	w.Close() // the page reaches the store
	fetched := w.Stats().FetchedBytes.Load()
	tail := request(t, u, "f", 4*MiB, 5000)
	tail.Blocks = true
	_, body = get(tail)
	checkFramed(tail, body)
	if f := w.Stats().FetchedBytes.Load(); f != fetched {
		t.Errorf("blocks of a page cached whole fetched %d bytes", f-fetched)
	}

	for _, bad := range []Request{
		{Off: 100, Len: BlockBytes},     // not on a block
		{Off: 0, Len: BlockBytes + 100}, // does not end on one
	} {
		r := req
		r.Off, r.Len = bad.Off, bad.Len
		if resp, body := get(r); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("blocks at %d of %d bytes: %s (%s), want 400", r.Off, r.Len, resp.Status, body)
		}
		var out sumCollector
		if err := w.Read(t.Context(), r, &out); !errors.Is(err, ErrBadRequest) {
			t.Errorf("Read of blocks at %d of %d bytes: %v, want ErrBadRequest", r.Off, r.Len, err)
		}
	}
	q := req.Query()
	q.Set(UnitParam, "bytes")
	if _, err := ParseRequest(q); err == nil {
		t.Error("unit=bytes parsed")
	}
}

type sumCollector struct{ n int }

func (s *sumCollector) Write(p []byte) (int, error) { return 0, errors.New("unframed write") }
func (s *sumCollector) TakeSummed(p []byte, _ uint32, _ bool) error {
	s.n += len(p)
	return nil
}
