package worker

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
)

// backlogWorker returns a worker over files with the given write backlog,
// and a function that closes it (its fetched pages reach the store first)
// and opens another on the same store.
func backlogWorker(t *testing.T, files map[string][]byte, backlog int64) (*Worker, *ufs.Local, func() *Worker) {
	t.Helper()
	_, local, _ := localWorker(t, files)
	store, err := pagestore.Open(pagestore.Config{Dir: t.TempDir(), Capacity: 256 * MiB, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srcs := sources.New(ufs.S3Config{}, false)
	srcs.Add(local)
	open := func() *Worker {
		w, err := New(Config{ID: "w", Store: store, Sources: srcs, WriteBacklogBytes: backlog, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		return w
	}
	w := open()
	return w, local, func() *Worker { w.Close(); w = open(); return w }
}

func readAll(t *testing.T, w *Worker, req Request, want []byte) {
	t.Helper()
	var out bytes.Buffer
	if err := w.Read(context.Background(), req, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("read %d bytes, not the object's %d", out.Len(), len(want))
	}
}

// TestBacklogFullServesWithoutCaching: with a write backlog smaller than
// a page, the disk is always "behind": every fetched page is served, none
// is cached (and none half-cached), and the next read fetches them again.
func TestBacklogFullServesWithoutCaching(t *testing.T) {
	data := pattern(5*MiB + 123)
	w, u, reopen := backlogWorker(t, map[string][]byte{"f": data}, 1)
	req := request(t, u, "f", 0, int64(len(data)))
	readAll(t, w, req, data)
	if got := w.Stats().WritesSkipped.Load(); got != 6 {
		t.Errorf("%d pages skipped, want all 6", got)
	}
	// The request's own pages reach it although nothing keeps them
	// (held): each is fetched once.
	if got := w.Stats().FetchedBytes.Load(); got != int64(len(data)) {
		t.Errorf("first read fetched %d bytes, want %d", got, len(data))
	}
	w = reopen()
	if _, pages := w.Store().Usage(); pages != 0 {
		t.Fatalf("%d pages cached past a full backlog", pages)
	}
	readAll(t, w, req, data)
	if got := w.Stats().FetchedBytes.Load(); got != int64(len(data)) {
		t.Errorf("second read fetched %d bytes, want the whole %d again", got, len(data))
	}
}

// TestBacklogAccounting: with a backlog of one page, whatever the disk's
// speed, every fetched page is either cached or counted as skipped, and a
// re-read fetches exactly the skipped ones and hits the rest.
func TestBacklogAccounting(t *testing.T) {
	data := pattern(40 * MiB)
	w, u, reopen := backlogWorker(t, map[string][]byte{"f": data}, MiB)
	req := request(t, u, "f", 0, int64(len(data)))
	readAll(t, w, req, data)
	skipped := w.Stats().WritesSkipped.Load()
	if got := w.Stats().FetchedBytes.Load(); got != int64(len(data)) {
		t.Errorf("first read fetched %d bytes, want %d", got, len(data))
	}
	w = reopen()
	_, cached := w.Store().Usage()
	if int64(cached)+skipped != 40 {
		t.Fatalf("%d pages cached and %d skipped of 40 fetched", cached, skipped)
	}
	readAll(t, w, req, data)
	if got, want := w.Stats().FetchedBytes.Load(), skipped*MiB; got != want {
		t.Errorf("re-read fetched %d bytes; %d pages were skipped (%d bytes)", got, skipped, want)
	}
	if got := w.Stats().PageHits.Load(); got != int64(cached) {
		t.Errorf("re-read hit %d pages, %d were cached", got, cached)
	}
	t.Logf("%d of 40 pages skipped", skipped)
}
