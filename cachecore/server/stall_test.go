package server

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/tests/testenv"
)

// TestEmbeddedReadOfHungBucketFails: through the embedded cache (what
// `hoard mount` runs), a read of a bucket that stops sending mid-GET fails
// with ufs.ErrStalled about Client.Timeout after the last byte, at the
// worker and then at the client's own read of the bucket, instead of
// waiting out the worker's 2-minute fetch timeout and then the client's
// 10-minute run; once the bucket sends again the same read returns the
// object.
func TestEmbeddedReadOfHungBucketFails(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "data")
	data := testenv.RandomBytes(3<<20+11, 9)
	m.Put(t, "data", "obj", data)
	proxy := testenv.NewCountingProxy(t, m.Endpoint())
	s3 := m.S3Config()
	s3.Endpoint, s3.Insecure = "http://"+proxy.Endpoint(), false

	const stallFor = 1500 * time.Millisecond
	c, err := NewClient(context.Background(), ClientConfig{CacheDir: t.TempDir(), Capacity: 64 << 20,
		Client: client.Config{Timeout: stallFor}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	loc, err := ufs.ParseSource("s3://data")
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := c.Open(context.Background(), loc, s3)
	if err != nil {
		t.Fatal(err)
	}
	st, err := bucket.Stat(context.Background(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	obj := client.Object{Source: bucket.Source(), Key: "obj", Version: st.Version, Size: st.Size}

	proxy.SetFault(testenv.ProxyFault{StallAfter: 200 << 10})
	buf := make([]byte, len(data))
	start := time.Now()
	_, err = c.ReadAt(context.Background(), obj, buf, 0)
	if took := time.Since(start); !errors.Is(err, ufs.ErrStalled) || took > 30*time.Second {
		t.Fatalf("read of a bucket that stalls: %v after %v; want ufs.ErrStalled within seconds", err, took)
	}
	if gets := proxy.GETs("obj"); gets != 2 {
		t.Errorf("%d GETs of the stalled object, want 2 (the worker's, then the client's own)", gets)
	}
	if n := c.Stats().Failovers.Load(); n != 0 {
		t.Errorf("%d failovers: the client took its in-process worker for failed when the bucket stalled", n)
	}
	proxy.SetFault(testenv.ProxyFault{})
	if n, err := c.ReadAt(context.Background(), obj, buf, 0); err != nil || n != len(data) || string(buf) != string(data) {
		t.Fatalf("once the bucket sends again: %d bytes, %v", n, err)
	}
}
