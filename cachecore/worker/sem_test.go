package worker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
)

// gatedBucket is a local bucket whose ranged reads block until the gate
// opens, and which counts them by key.
type gatedBucket struct {
	*ufs.Local
	gate    chan struct{}
	started chan string // a read began (buffered)
	mu      sync.Mutex
	reads   map[string]int
}

func (b *gatedBucket) ReadRange(ctx context.Context, key, version string, off, n int64) (io.ReadCloser, error) {
	b.mu.Lock()
	b.reads[key]++
	b.mu.Unlock()
	b.started <- key
	<-b.gate // deaf to ctx: the GET in flight holds its slot until released
	return b.Local.ReadRange(ctx, key, version, off, n)
}

func (b *gatedBucket) readsOf(key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reads[key]
}

// TestFetchTimedOutInQueueStartsNoGET: with every fetch slot taken, a fetch
// whose time runs out while it waits for one fails its pages and makes no
// GET; the bound on GETs in flight holds.
func TestFetchTimedOutInQueueStartsNoGET(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"held", "queued"} {
		if err := os.WriteFile(filepath.Join(dir, name), pattern(MiB), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	local, err := ufs.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	bucket := &gatedBucket{Local: local, gate: make(chan struct{}), started: make(chan string, 4), reads: map[string]int{}}
	store, err := pagestore.Open(pagestore.Config{Dir: t.TempDir(), Capacity: 64 * MiB, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srcs := sources.New(ufs.S3Config{}, false)
	srcs.Add(bucket)
	const timeout = 300 * time.Millisecond
	w, err := New(Config{ID: "w", Store: store, Sources: srcs, MaxFetches: 1, FetchTimeout: timeout,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			close(bucket.gate)
		}
	}
	t.Cleanup(func() { release(); w.Close() })

	// The one slot: a GET of "held", blocked in the bucket.
	held := request(t, local, "held", 0, MiB)
	heldDone := make(chan error, 1)
	go func() {
		var out bytes.Buffer
		heldDone <- w.Read(context.Background(), held, &out)
	}()
	select {
	case key := <-bucket.started:
		if key != "held" {
			t.Fatalf("first GET of %q, want held", key)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the first fetch never reached the bucket")
	}

	// "queued" waits for the slot longer than its fetch may take.
	start := time.Now()
	queued := request(t, local, "queued", 0, MiB)
	queuedDone := make(chan error, 1)
	go func() {
		var out bytes.Buffer
		queuedDone <- w.Read(context.Background(), queued, &out)
	}()
	select {
	case err := <-queuedDone:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("read queued behind a full fetch queue: err = %v, want the fetch's deadline", err)
		}
	case key := <-bucket.started:
		t.Fatalf("a fetch that timed out in the queue started a GET of %q", key)
	case <-time.After(30 * time.Second):
		t.Fatal("the queued read neither failed nor reached the bucket")
	}
	if waited := time.Since(start); waited < timeout {
		t.Errorf("read failed after %s, before its fetch timed out (%s)", waited, timeout)
	}
	if n := bucket.readsOf("queued"); n != 0 {
		t.Errorf("a fetch that timed out in the queue made %d GETs, want 0", n)
	}
	if n := w.Stats().Fetches.Load(); n != 1 {
		t.Errorf("%d fetches started, want 1 (the one holding the slot)", n)
	}

	// The slot frees; a new read of "queued" fetches it (nothing was cached
	// or remembered from the failed attempt).
	release()
	<-heldDone
	var out bytes.Buffer
	if err := w.Read(context.Background(), request(t, local, "queued", 0, MiB), &out); err != nil || !bytes.Equal(out.Bytes(), pattern(MiB)) {
		t.Fatalf("read after the slot freed: %v", err)
	}
	if n := bucket.readsOf("queued"); n != 1 {
		t.Errorf("%d GETs of queued after the slot freed, want 1", n)
	}
}
