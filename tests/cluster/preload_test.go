package cluster_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/mtls"
	"hoard.dev/hoard/cachecore/preload"
	"hoard.dev/hoard/tests/testenv"
)

// TestPreload warms a prefix through the workers (no bytes to the caller),
// then a read of it makes no GET; hoard status shows the fill.
func TestPreload(t *testing.T) {
	e := newEnv(t, 3, "1GiB")
	ctx := context.Background()
	var want [][]byte
	var objs []client.Object
	for i := 0; i < 12; i++ {
		d, o := e.put(t, fmt.Sprintf("ds/part-%02d", i), int64(3*MiB+i*1000), uint64(i))
		want, objs = append(want, d), append(objs, o)
	}
	e.put(t, "other/not-this", MiB, 99)
	c := e.client(t, nil)
	bucket, err := c.Sources.Open(ctx, objs[0].Source)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var updates []preload.Progress
	p, err := preload.Run(ctx, bucket, "ds/", c, preload.Options{Parallel: 4, OnProgress: func(p preload.Progress) {
		mu.Lock()
		updates = append(updates, p)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatalf("preload: %v", err)
	}
	var total int64
	for _, o := range objs {
		total += o.Size
	}
	if p.DoneFiles != 12 || p.TotalFiles != 12 || p.DoneBytes != total || p.Fetched != total || !p.Listed {
		t.Fatalf("progress = %+v, want 12 files, %d bytes, all fetched", p, total)
	}
	if len(updates) < 12 {
		t.Errorf("%d progress updates, want one per object at least", len(updates))
	}
	if n := c.Stats().BytesRead.Load(); n != 0 {
		t.Errorf("preload moved %d bytes to the caller, want 0", n)
	}
	if e.proxy.GETs("other/not-this") != 0 {
		t.Error("preload fetched an object outside the prefix")
	}

	// Preloading again fetches nothing; reading makes no GET.
	p2, err := preload.Run(ctx, bucket, "ds/", c, preload.Options{})
	if err != nil || p2.Fetched != 0 || p2.DoneFiles != 12 {
		t.Fatalf("second preload = %+v, %v; want 12 files, 0 fetched", p2, err)
	}
	e.proxy.Reset()
	fresh := e.client(t, func(cfg *client.Config) { cfg.HotBytes = -1 })
	for i, o := range objs {
		mustReadAll(t, fresh, o, want[i])
	}
	if n := e.proxy.TotalGETs(); n != 0 {
		t.Errorf("reading preloaded data made %d GETs, want 0", n)
	}

	// A missing prefix preloads nothing, without error.
	if p3, err := preload.Run(ctx, bucket, "nothing-here/", c, preload.Options{}); err != nil || p3.TotalFiles != 0 {
		t.Errorf("empty prefix: %+v, %v", p3, err)
	}

	// hoard status lists the three workers, alive, with pages.
	tlsFiles := mtls.ClientFiles(testenv.Certs(t))
	out, err := exec.Command(testenv.HoardBinary(t), "status", "--etcd", strings.Join(e.etcd.Endpoints(), ","),
		"--cluster", cluster, "--tls-ca", tlsFiles.CA, "--tls-cert", tlsFiles.Cert, "--tls-key", tlsFiles.Key).CombinedOutput()
	if err != nil {
		t.Fatalf("hoard status: %v\n%s", err, out)
	}
	t.Logf("hoard status:\n%s", out)
	for _, w := range e.workers {
		if !strings.Contains(string(out), w.ID) {
			t.Errorf("hoard status does not list %s", w.ID)
		}
	}
	if !strings.Contains(string(out), "3 workers registered, 3 alive") {
		t.Error("hoard status summary does not say 3 workers alive")
	}
}
