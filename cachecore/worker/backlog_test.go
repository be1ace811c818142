package worker

import (
	"bytes"
	"context"
	"testing"
)

// TestWriteBacklog: with a write backlog of one page, a cold read of 40
// pages gets every byte, each page fetched once, and every page reaches
// the store: the fetch waits for the disk rather than dropping pages.
// Pages of small objects count by their bytes.
func TestWriteBacklog(t *testing.T) {
	data := pattern(40 * MiB)
	small := pattern(100 << 10)
	w, local, _ := localWorkerWith(t, map[string][]byte{"f": data, "s": small}, func(c *Config) { c.WriteBacklogBytes = MiB })
	for key, want := range map[string][]byte{"f": data, "s": small} {
		var out bytes.Buffer
		if err := w.Read(context.Background(), request(t, local, key, 0, int64(len(want))), &out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("%s: read %d bytes, not the object's %d", key, out.Len(), len(want))
		}
	}
	w.Close() // waits for the queue to reach the store
	store := w.Store()
	if got, want := w.Stats().FetchedBytes.Load(), int64(len(data)+len(small)); got != want {
		t.Errorf("fetched %d bytes, want each page once (%d)", got, want)
	}
	if _, pages := store.Usage(); pages != 41 {
		t.Errorf("%d pages cached, want 41", pages)
	}
	if n := w.maxLog; w.backlog.TryAcquire(n) {
		w.backlog.Release(n) // every queued byte was given back
	} else {
		t.Errorf("the backlog still holds bytes after every page was written")
	}
}
