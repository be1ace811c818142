package client_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/tests/testenv"
)

// readAll reads obj through r in reads of n bytes.
func readAll(t *testing.T, r *client.Reader, size int64, n int) {
	t.Helper()
	buf := make([]byte, n)
	for off := int64(0); off < size; off += int64(n) {
		if _, err := r.ReadAt(context.Background(), buf, off); err != nil && off+int64(n) < size {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
}

// TestReadStatsBySource: the bytes a volume's readers read add up to what
// they read, first from the worker (readahead included), then from memory;
// a reader of another volume, or no volume, counts nothing here.
func TestReadStatsBySource(t *testing.T) {
	c, obj := embedded(t, 40*MiB)
	var vol, other client.ReadStats
	readAll(t, c.Counted(&vol).NewReader(obj), obj.Size, 256<<10)
	if got := vol.Bytes(client.SourceWorker); got != obj.Size {
		t.Errorf("first sequential read: %d bytes from the worker, want all %d", got, obj.Size)
	}
	if got := vol.Bytes(client.SourceMemory) + vol.Bytes(client.SourceBucket); got != 0 {
		t.Errorf("first read: %d bytes from memory or the bucket, want 0", got)
	}
	if vol.Readahead.Load() == 0 {
		t.Error("a sequential read counted no readahead")
	}
	readAll(t, c.Counted(&vol).NewReader(obj), obj.Size, MiB)
	if got := vol.Bytes(client.SourceMemory); got != obj.Size {
		t.Errorf("second read: %d bytes from memory, want %d", got, obj.Size)
	}
	readAll(t, c.NewReader(obj), obj.Size, MiB) // not counted
	if got := vol.Bytes(client.SourceMemory) + vol.Bytes(client.SourceWorker); got != 2*obj.Size {
		t.Errorf("an uncounted reader changed the volume's bytes: %d", got)
	}
	if vol.Bypassed.Load() != 0 || other.Bytes(client.SourceWorker) != 0 {
		t.Error("bytes counted as bypassed, or in another volume's stats")
	}
}

// bucketDir is a file:// bucket holding one object of size bytes.
func bucketDir(t *testing.T, size int) (ufs.UFS, client.Object) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := ufs.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := u.Stat(context.Background(), "f")
	if err != nil {
		t.Fatal(err)
	}
	return u, client.Object{Source: u.Source(), Key: "f", Version: st.Version, Size: st.Size}
}

// TestBypassCounted: when the only worker cannot read the bucket (here: it
// may not open file:// sources, as a worker without the client's scheme or
// credentials), every byte comes from the bucket directly: counted as
// bypassed with the cause, and warned about once per interval, not per read.
func TestBypassCounted(t *testing.T) {
	ctx := context.Background()
	w, err := server.StartWorker(ctx, server.WorkerConfig{
		ID: "w1", Listen: "127.0.0.1:0", CacheDir: t.TempDir(), Capacity: 1 << 30, InsecureDev: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	u, obj := bucketDir(t, 24*MiB)
	members, err := membership.Static(w.Member())
	if err != nil {
		t.Fatal(err)
	}
	reg := sources.New(ufs.S3Config{}, false)
	reg.Add(u)
	var logs testenv.LogBuffer
	c, err := client.New(client.Config{Members: members, Sources: reg, BypassLogInterval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	var vol client.ReadStats
	readAll(t, c.Counted(&vol).NewReader(obj), obj.Size, MiB)
	c.Close() // waits for readahead in flight
	if got := vol.Bytes(client.SourceBucket); got != obj.Size {
		t.Errorf("%d bytes read from the bucket, want all %d", got, obj.Size)
	}
	if got := vol.Bypassed.Load(); got < obj.Size {
		t.Errorf("%d bytes counted as bypassed, want at least %d", got, obj.Size)
	}
	if got := c.Stats().BypassedBytes.Load(); got != vol.Bypassed.Load() {
		t.Errorf("client counted %d bypassed bytes, the volume %d", got, vol.Bypassed.Load())
	}
	at, cause := vol.LastBypass()
	if time.Since(at) > time.Minute || !strings.Contains(cause, "could not read the bucket") {
		t.Errorf("last bypass %v, cause %q", at, cause)
	}
	if n := logs.Count("cache bypassed"); n != 1 {
		t.Errorf("%d bypass warnings for one interval, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "could not read the bucket") {
		t.Errorf("the warning does not say why:\n%s", logs.String())
	}
}

// TestBypassNoWorker: with no worker alive at all, the cause says so, and
// failovers are not counted (nothing was tried).
func TestBypassNoWorker(t *testing.T) {
	u, obj := bucketDir(t, 3*MiB)
	members, err := membership.Static()
	if err != nil {
		t.Fatal(err)
	}
	reg := sources.New(ufs.S3Config{}, false)
	reg.Add(u)
	c, err := client.New(client.Config{Members: members, Sources: reg,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var vol client.ReadStats
	readAll(t, c.Counted(&vol).NewReader(obj), obj.Size, MiB)
	if _, cause := vol.LastBypass(); !strings.Contains(cause, "no cache worker is alive") {
		t.Errorf("cause %q", cause)
	}
	if vol.Failovers.Load() != 0 || vol.Bytes(client.SourceBucket) != obj.Size {
		t.Errorf("failovers %d, bucket bytes %d", vol.Failovers.Load(), vol.Bytes(client.SourceBucket))
	}
}
