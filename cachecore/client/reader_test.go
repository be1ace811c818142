package client_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/cachecore/worker"
)

const MiB = 1 << 20

// embedded returns a client with an in-process worker over a local
// directory holding one file of size bytes.
func embedded(t *testing.T, size int64) (*server.Client, client.Object) {
	t.Helper()
	return embeddedWith(t, size, client.Config{})
}

// embeddedWith is embedded with the client's Config.
func embeddedWith(t *testing.T, size int64, cfg client.Config) (*server.Client, client.Object) {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i / 4096)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := server.NewClient(ctx, server.ClientConfig{CacheDir: t.TempDir(), Capacity: 1 << 30, Client: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	u, err := c.Open(ctx, ufs.Location{Scheme: "file", Bucket: dir}, ufs.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := u.Stat(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	return c, client.Object{Source: u.Source(), Key: "f", Version: st.Version, Size: st.Size}
}

// TestRandomReadsDoNotReadAhead: a random 1 MiB read followed by the kernel's
// own readahead of the next MiB is not a stream; reading 8 MiB ahead of each
// would multiply the traffic.
func TestRandomReadsDoNotReadAhead(t *testing.T) {
	c, obj := embedded(t, 256*MiB)
	r := c.NewReader(obj)
	rng := rand.New(rand.NewPCG(1, 1))
	buf := make([]byte, MiB)
	for i := 0; i < 50; i++ {
		off := rng.Int64N(obj.Size-2*MiB) &^ 4095
		r.ReadAt(context.Background(), buf, off)
		r.ReadAt(context.Background(), buf, off+MiB) // the kernel's readahead
	}
	c.Close() // waits for fetches in flight
	served := c.Embedded.Worker.Stats().BytesServed.Load()
	t.Logf("100 MiB asked at random, %d MiB served by the worker", served/MiB)
	if served > 150*MiB {
		t.Errorf("random reads pulled %d MiB through the cache for 100 MiB asked: readahead on random access", served/MiB)
	}
}

// TestSequentialReadsReadAhead: a stream gets its pages read ahead, so most
// reads are answered from the hot tier.
func TestSequentialReadsReadAhead(t *testing.T) {
	c, obj := embedded(t, 64*MiB)
	r := c.NewReader(obj)
	buf := make([]byte, 256<<10)
	for off := int64(0); off < obj.Size; off += int64(len(buf)) {
		if _, err := r.ReadAt(context.Background(), buf, off); err != nil {
			t.Fatal(err)
		}
		if buf[0] != byte(off/4096) {
			t.Fatalf("wrong byte at %d", off)
		}
	}
	st := c.Stats()
	t.Logf("sequential 64 MiB: %d hot hits, %d joined, %d local requests", st.HotHits.Load(), st.Joined.Load(), st.LocalReads.Load())
	if st.HotHits.Load()+st.Joined.Load() < 150 {
		t.Errorf("only %d of 256 reads found their page read ahead", st.HotHits.Load()+st.Joined.Load())
	}
}

// TestSlice: a range within one page comes back as that page's bytes, one
// across pages is refused (ok false), and the end of the object is io.EOF.
func TestSlice(t *testing.T) {
	c, obj := embedded(t, 3*MiB+100)
	r := c.NewReader(obj)
	ctx := context.Background()
	want := func(off, n int64) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte((off + int64(i)) / 4096)
		}
		return b
	}
	for _, tc := range []struct {
		off    int64
		n      int
		ok     bool
		eof    bool
		length int
	}{
		{0, MiB, true, false, MiB},
		{MiB + 10, 4096, true, false, 4096},
		{MiB - 10, 20, false, false, 0},
		{3 * MiB, MiB, true, true, 100},
		{3*MiB + 100, 10, true, true, 0},
	} {
		data, ok, err := r.Slice(ctx, tc.off, tc.n)
		if ok != tc.ok || (err == io.EOF) != tc.eof || (err != nil && err != io.EOF) || len(data) != tc.length {
			t.Errorf("Slice(%d, %d) = %d bytes, ok %v, err %v; want %d bytes, ok %v, eof %v",
				tc.off, tc.n, len(data), ok, err, tc.length, tc.ok, tc.eof)
			continue
		}
		if !bytes.Equal(data, want(tc.off, int64(tc.length))) {
			t.Errorf("Slice(%d, %d): wrong bytes", tc.off, tc.n)
		}
	}
}

// TestRandomReadsFetchBlocks (Config.RandomBlocks): a random 1 MiB read at an unaligned offset
// spans two pages; it fetches the blocks it needs (about 1 MiB), not both
// pages (2 MiB), and its bytes are right. Read again, nothing is fetched;
// a page cached whole serves a random read of part of it without blocks.
func TestRandomReadsFetchBlocks(t *testing.T) {
	c, obj := embeddedWith(t, 64*MiB, client.Config{RandomBlocks: true})
	ctx := context.Background()
	w := c.Embedded.Worker
	rng := rand.New(rand.NewPCG(3, 3))
	buf := make([]byte, MiB)
	check := func(off int64, n int) {
		t.Helper()
		for i := 0; i < n; i += 4096 - int(off+int64(i))%4096 {
			if buf[i] != byte((off+int64(i))/4096) {
				t.Fatalf("read at %d: wrong byte at %d", off, off+int64(i))
			}
		}
	}
	var offs []int64
	for i := 0; i < 20; i++ {
		off := MiB/2 + rng.Int64N(obj.Size-3*MiB)&^4095
		offs = append(offs, off)
		r := c.NewReader(obj)
		n, err := r.ReadAt(ctx, buf, off)
		if err != nil || n != MiB {
			t.Fatalf("ReadAt(%d) = %d, %v", off, n, err)
		}
		check(off, n)
		if n, err = r.ReadAt(ctx, buf[:4096], off+MiB); err != nil || n != 4096 { // the kernel's next request
			t.Fatalf("ReadAt(%d) = %d, %v", off+MiB, n, err)
		}
		check(off+MiB, 4096)
	}
	fetched := w.Stats().FetchedBytes.Load()
	t.Logf("20 random 1 MiB reads fetched %.2f MiB", float64(fetched)/MiB)
	if fetched > 20*(MiB+2*64<<10) {
		t.Errorf("20 random 1 MiB reads fetched %d bytes: more than their blocks", fetched)
	}
	if fetched < 20*MiB/2 {
		t.Errorf("20 random 1 MiB reads fetched only %d bytes", fetched)
	}
	for _, off := range offs {
		if _, err := c.NewReader(obj).ReadAt(ctx, buf, off); err != nil {
			t.Fatal(err)
		}
		check(off, MiB)
	}
	if again := w.Stats().FetchedBytes.Load(); again != fetched {
		t.Errorf("reading the same ranges again fetched %d more bytes", again-fetched)
	}

	// A page read whole first (from the object's start: sequential) then
	// serves a random read of part of it: no block is fetched for it.
	if _, err := c.NewReader(obj).ReadAt(ctx, buf, 0); err != nil {
		t.Fatal(err)
	}
	before := w.Stats().FetchedBytes.Load()
	if _, err := c.NewReader(obj).ReadAt(ctx, buf[:4096], 4096*7); err != nil {
		t.Fatal(err)
	}
	check(4096*7, 4096)
	if after := w.Stats().FetchedBytes.Load(); after != before {
		t.Errorf("a random read of a cached page fetched %d bytes", after-before)
	}
}

// TestReorderedSequentialReads: a sequential reader whose requests arrive
// slightly out of order (the kernel's readahead, served concurrently), at
// offsets that are not page aligned, is still a stream: nothing is fetched
// twice (as blocks and then as pages) and readahead runs.
func TestReorderedSequentialReads(t *testing.T) {
	c, obj := embeddedWith(t, 32*MiB, client.Config{RandomBlocks: true})
	ctx := context.Background()
	r := c.NewReader(obj)
	buf := make([]byte, MiB)
	const skew = MiB / 2
	var order []int64
	for i := int64(0); i+1 < 31; i += 2 {
		order = append(order, i+1, i) // the later request first
	}
	if _, err := r.ReadAt(ctx, buf, 0); err != nil { // a stream starts at 0
		t.Fatal(err)
	}
	for _, i := range order {
		off := skew + i*MiB
		n, err := r.ReadAt(ctx, buf, off)
		if err != nil || n != MiB {
			t.Fatalf("ReadAt(%d) = %d, %v", off, n, err)
		}
		if buf[0] != byte(off/4096) || buf[n-1] != byte((off+int64(n)-1)/4096) {
			t.Fatalf("ReadAt(%d): wrong bytes", off)
		}
	}
	c.Client.Close()          // waits for the client's fetches
	c.Embedded.Worker.Close() // and the worker's writes
	fetched := c.Embedded.Worker.Stats().FetchedBytes.Load()
	t.Logf("32 MiB read in reordered requests: %.2f MiB fetched, %d hot hits", float64(fetched)/MiB, c.Stats().HotHits.Load())
	if fetched > obj.Size {
		t.Errorf("fetched %d bytes of a %d-byte object: reordered reads were taken for random ones", fetched, obj.Size)
	}
	whole := 0
	for p := int64(0); p < obj.Size/MiB; p++ {
		if c.Embedded.Store.Contains(worker.PagesOf(MiB).Key(obj.ID(), p)) {
			whole++
		}
	}
	if whole < 28 {
		t.Errorf("%d of 32 pages cached whole: the stream was read in blocks", whole)
	}
}
