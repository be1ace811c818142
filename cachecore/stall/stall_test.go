package stall_test

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/stall"
)

// slowReader hands out one byte per read, each after a pause.
type slowReader struct {
	data  []byte
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	p[0], s.data = s.data[0], s.data[1:]
	return 1, nil
}

// TestProgressKeepsTheWatchAlive: reads that each come within the bound
// never fire it, though the whole transfer takes many times the bound; a
// peer that then sends nothing fires it once the bound has passed.
func TestProgressKeepsTheWatchAlive(t *testing.T) {
	const d = 200 * time.Millisecond
	var fired atomic.Int64
	w := stall.Start(d, func() { fired.Add(1) })
	data := bytes.Repeat([]byte("x"), 12)
	got, err := io.ReadAll(w.Reader(&slowReader{data: data, pause: d / 4}))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %q, %v", got, err)
	}
	if fired.Load() != 0 {
		t.Fatalf("the watch fired during a transfer that made progress every %v (bound %v)", d/4, d)
	}
	// Nothing more: the watch fires once the bound has passed.
	deadline := time.Now().Add(10 * d)
	for fired.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(d / 10)
	}
	if fired.Load() != 1 {
		t.Fatalf("fired %d times after %v without progress, want 1", fired.Load(), 10*d)
	}
	if w.Stop() {
		t.Error("Stop reported a watch that had fired as stopped in time")
	}
}

// TestStoppedWatchNeverFires: a transfer that ended (Stop) is not
// cancelled later.
func TestStoppedWatchNeverFires(t *testing.T) {
	const d = 50 * time.Millisecond
	var fired atomic.Int64
	w := stall.Start(d, func() { fired.Add(1) })
	if !w.Stop() {
		t.Fatal("Stop right after Start reported the watch fired")
	}
	time.Sleep(4 * d)
	if fired.Load() != 0 {
		t.Fatal("a stopped watch fired")
	}
}

// TestPausedWatchWaits: time spent paused (waiting on the reader's own
// side) does not count; once resumed, the watch fires after a whole bound.
func TestPausedWatchWaits(t *testing.T) {
	const d = 100 * time.Millisecond
	var fired atomic.Int64
	w := stall.Start(d, func() { fired.Add(1) })
	resume := w.Pause()
	time.Sleep(4 * d)
	if fired.Load() != 0 {
		t.Fatal("the watch fired while paused")
	}
	resume()
	deadline := time.Now().Add(20 * d)
	for fired.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(d / 10)
	}
	if fired.Load() != 1 {
		t.Fatalf("fired %d times after resuming and %v without progress, want 1", fired.Load(), 20*d)
	}
	w.Pause()() // a fired watch stays fired: no second call
	time.Sleep(2 * d)
	if fired.Load() != 1 {
		t.Fatalf("fired %d times, want 1", fired.Load())
	}
}
