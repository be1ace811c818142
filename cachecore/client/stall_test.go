package client_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/cachecore/worker"
	"hoard.dev/hoard/tests/testenv"
)

// sourcedAs is a bucket handle named as another: the worker below reaches
// the client's bucket through a proxy the client does not use.
type sourcedAs struct {
	ufs.UFS
	src objid.Source
}

func (s sourcedAs) Source() objid.Source { return s.src }

// TestBucketStallAfterFirstPageIsNotTheWorkers: the bucket hangs, at the
// only worker, after the worker sent the first page of a run. The worker
// ends its response with a trailer that blames the bucket, so the client
// keeps the page, does not suspect the worker (no failover), and reads the
// rest from the bucket itself; the bytes are the object's.
func TestBucketStallAfterFirstPageIsNotTheWorkers(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "data")
	data := testenv.RandomBytes(4*MiB+7, 9)
	m.Put(t, "data", "obj", data)
	proxy := testenv.NewCountingProxy(t, m.Endpoint())
	ctx := context.Background()

	direct, err := ufs.NewS3(ctx, "data", m.S3Config())
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.S3Config()
	cfg.Endpoint, cfg.Insecure = "http://"+proxy.Endpoint(), false
	viaProxy, err := ufs.NewS3(ctx, "data", cfg)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	store, err := pagestore.Open(pagestore.Config{Dir: t.TempDir(), Capacity: 64 * MiB, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	wsrcs := sources.New(ufs.S3Config{}, false)
	wsrcs.Add(sourcedAs{viaProxy, direct.Source()})
	w, err := worker.New(worker.Config{ID: "w1", Store: store, Sources: wsrcs, FetchStall: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)

	members, err := membership.Static(membership.Member{ID: "w1", Addr: strings.TrimPrefix(srv.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	csrcs := sources.New(ufs.S3Config{}, false)
	csrcs.Add(direct)
	c, err := client.New(client.Config{Members: members, Sources: csrcs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	st, err := direct.Stat(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	obj := client.Object{Source: direct.Source(), Key: "obj", Version: st.Version, Size: st.Size}

	proxy.SetFault(testenv.ProxyFault{StallAfter: MiB + MiB/2})
	got := make([]byte, len(data))
	if _, err := c.ReadAt(ctx, obj, got, 0); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("wrong bytes returned")
	}
	s := c.Stats()
	if s.Failovers.Load() != 0 {
		t.Errorf("%d failovers: the client took the worker for failed when its bucket hung", s.Failovers.Load())
	}
	if s.RemoteReads.Load() == 0 || s.BucketReads.Load() == 0 {
		t.Errorf("%d reads from the worker, %d from the bucket; want both", s.RemoteReads.Load(), s.BucketReads.Load())
	}
	if b := s.BypassedBytes.Load(); b <= 0 || b >= int64(len(data)) {
		t.Errorf("%d bytes read from the bucket directly, want the object's but the worker's first page (remote %d, bucket reads %d, GETs %d)", b, s.RemoteReads.Load(), s.BucketReads.Load(), proxy.GETs("obj"))
	}
}
