package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/cachecore/worker"
	"hoard.dev/hoard/tests/testenv"
)

// hostileAnswer is what the fake worker of FuzzHostileWorker sends.
type hostileAnswer struct {
	body          []byte
	status, cause string // trailer values; "" for none
}

// FuzzHostileWorker: whatever a worker answers a read with (any body in
// the framed format's headers, any error trailer), the client returns the
// bucket's bytes or an error, never other bytes, and does not panic.
func FuzzHostileWorker(f *testing.F) {
	const pageSize = 4096
	dir := f.TempDir()
	data := testenv.RandomBytes(2*pageSize+100, 3)
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
		f.Fatal(err)
	}
	bucket, err := ufs.NewLocal(dir)
	if err != nil {
		f.Fatal(err)
	}
	st, err := bucket.Stat(context.Background(), "f")
	if err != nil {
		f.Fatal(err)
	}
	obj := client.Object{Source: bucket.Source(), Key: "f", Version: st.Version, Size: st.Size}

	var answer atomic.Pointer[hostileAnswer]
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		a := answer.Load()
		// The answer's bytes from where the request's first page's frame
		// would be to where its last one's would end: the true answer
		// for any run of pages the client asks for.
		off, _ := strconv.Atoi(r.URL.Query().Get("off"))
		n, _ := strconv.Atoi(r.URL.Query().Get("len"))
		const frame = worker.SumBytes + pageSize
		from := min(off/pageSize*frame, len(a.body))
		to := min(max(from, (off+n+pageSize-1)/pageSize*frame), len(a.body))
		body := a.body[from:to]
		h := rw.Header()
		h.Set(worker.SumsHeader, worker.SumsCRC32C)
		h.Set(worker.PageSizeHeader, strconv.Itoa(pageSize))
		h.Set("Trailer", worker.StatusTrailer+", "+worker.CauseHeader)
		rw.Write(body)
		h.Set(worker.StatusTrailer, a.status)
		h.Set(worker.CauseHeader, a.cause)
	}))
	f.Cleanup(srv.Close)
	members, err := membership.Static(membership.Member{ID: "w", Addr: strings.TrimPrefix(srv.URL, "http://")})
	if err != nil {
		f.Fatal(err)
	}
	srcs := sources.New(ufs.S3Config{}, false)
	srcs.Add(bucket)

	// Seeds: the true answer, cut after its first page, with an error
	// trailer, with a bit flipped, and with a page too many.
	var framed []byte
	for i, off := 0, 0; off < len(data); i, off = i+1, off+pageSize {
		page := data[off:min(off+pageSize, len(data))]
		key := pagestore.Key{File: obj.ID(), Page: uint32(i)}
		framed = binary.LittleEndian.AppendUint32(framed, pagestore.Checksum(key, page))
		framed = append(framed, page...)
	}
	f.Add(framed, "", "")
	f.Add(framed[:worker.SumBytes+pageSize], "502", worker.CauseBucket)
	f.Add(framed[:worker.SumBytes+pageSize], "503", worker.CauseBucket)
	f.Add(framed[:worker.SumBytes+pageSize/2], "", "")
	flipped := bytes.Clone(framed)
	flipped[worker.SumBytes+pageSize+10] ^= 1
	f.Add(flipped, "", "")
	f.Add(append(bytes.Clone(framed), framed[:worker.SumBytes+pageSize]...), "", "")

	f.Fuzz(func(t *testing.T, body []byte, status, cause string) {
		if len(body) > 4*len(framed) || len(status) > 16 || len(cause) > 16 {
			return
		}
		answer.Store(&hostileAnswer{body: body, status: status, cause: cause})
		c, err := client.New(client.Config{Members: members, Sources: srcs, PageSize: pageSize, HotBytes: -1,
			BucketRetryFor: 1, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got := make([]byte, len(data))
		n, err := c.ReadAt(context.Background(), obj, got, 0)
		if err == nil && (n != len(data) || !bytes.Equal(got, data)) {
			t.Fatalf("the client returned %d bytes that are not the bucket's", n)
		}
		if bytes.Equal(body, framed) && status == "" {
			if s := c.Stats(); err != nil || s.RemoteReads.Load() == 0 || s.BucketReads.Load() != 0 {
				t.Fatalf("the true answer: %v, %d reads from the worker, %d from the bucket; want all from the worker",
					err, s.RemoteReads.Load(), s.BucketReads.Load())
			}
		}
	})
}

// TestHostileWorkerListing: a worker's listing page of more entries than
// a page may hold, or an answer without end, is refused after a bounded
// read, and the client lists the bucket itself.
func TestHostileWorkerListing(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bucket, err := ufs.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	var tooMany bytes.Buffer
	tooMany.WriteString(`{"Objects":[`)
	for i := range worker.MaxListKeys + 1 {
		if i > 0 {
			tooMany.WriteString(",")
		}
		fmt.Fprintf(&tooMany, `{"Key":"k%06d"}`, i)
	}
	tooMany.WriteString(`]}`)
	var sent atomic.Int64 // by the answer without end
	for name, answer := range map[string]func(http.ResponseWriter){
		"a page too long": func(rw http.ResponseWriter) { rw.Write(tooMany.Bytes()) },
		"an answer without end": func(rw http.ResponseWriter) {
			rw.Write([]byte(`{"Objects":[{"Key":"`))
			for range 256 { // 256 MiB, far more than a client reads
				n, err := rw.Write(bytes.Repeat([]byte("x"), 1<<20))
				sent.Add(int64(n))
				if err != nil {
					return
				}
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { answer(rw) }))
			t.Cleanup(srv.Close)
			members, err := membership.Static(membership.Member{ID: "w", Addr: strings.TrimPrefix(srv.URL, "http://")})
			if err != nil {
				t.Fatal(err)
			}
			c, err := client.New(client.Config{Members: members, Sources: sources.New(ufs.S3Config{}, false),
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			page, err := c.SharedListing(bucket, time.Minute).List(context.Background(), ufs.ListOptions{})
			if err != nil || len(page.Objects) != 2 || page.Objects[0].Key != "a" || page.Objects[1].Key != "b" {
				t.Fatalf("listing: %v, %d objects; want the bucket's a and b", err, len(page.Objects))
			}
			if n := c.Stats().SharedLists.Load(); n != 0 {
				t.Errorf("%d listings taken from the worker", n)
			}
			srv.CloseClientConnections()
			srv.Close() // waits for the handler
			if n := sent.Load(); n > 64<<20 {
				t.Errorf("the worker could send %d MiB of one listing before the client hung up", n>>20)
			}
		})
	}
}
