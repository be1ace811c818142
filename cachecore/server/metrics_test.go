package server

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"hoard.dev/hoard/cachecore/pagestore"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/cachecore/worker"
	"hoard.dev/hoard/internal/metrics"
)

// TestWorkerCollectorServesEveryWorkerMetric: every worker and page store
// metric of the table is gathered from a worker. A metric emitted but left
// out of the collector's set panicked inside the scrape, and the series
// after it (the page store's) were missing from /metrics.
func TestWorkerCollectorServesEveryWorkerMetric(t *testing.T) {
	store, err := pagestore.Open(pagestore.Config{Dir: t.TempDir(), Capacity: 16 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	w, err := worker.New(worker.Config{ID: "w", Store: store, Sources: sources.New(ufs.S3Config{}, false), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewWorkerCollector(&Worker{Worker: w, Store: store}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
	}
	for _, id := range metrics.All() {
		name := id.Name()
		if !(strings.HasPrefix(name, "hoard_worker_") || strings.HasPrefix(name, "hoard_pagestore_")) {
			continue
		}
		if !got[name] {
			t.Errorf("%s is not gathered from a worker", name)
		}
	}
}
