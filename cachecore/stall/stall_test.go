package stall_test

import (
	"bytes"
	"context"
	"errors"
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
	const d = 500 * time.Millisecond
	var fired atomic.Int64
	w := stall.Start(d, func() { fired.Add(1) })
	data := bytes.Repeat([]byte("x"), 15)
	got, err := io.ReadAll(w.Reader(&slowReader{data: data, pause: d / 10}))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %q, %v", got, err)
	}
	if fired.Load() != 0 {
		t.Fatalf("the watch fired during a transfer that made progress every %v (bound %v)", d/10, d)
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

// blockingReader returns nothing until its context is done, then its error.
type blockingReader struct{ ctx context.Context }

func (b blockingReader) Read([]byte) (int, error) {
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

var errStalled = errors.New("peer stalled")

// TestWithContextSaysWhy: a stalled transfer's context is cancelled and
// its read fails with the watch's cause; an error before any stall, and
// the end of a body, pass unchanged.
func TestWithContextSaysWhy(t *testing.T) {
	ctx, w, release := stall.WithContext(context.Background(), 100*time.Millisecond, errStalled)
	defer release()
	other := errors.New("connection reset")
	if err := w.Err(other); err != other {
		t.Fatalf("Err before a stall = %v, want the error unchanged", err)
	}
	_, err := w.Reader(blockingReader{ctx}).Read(make([]byte, 1))
	if !errors.Is(err, errStalled) || !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("a stalled read: %v (context: %v), want the cause and a cancelled context", err, ctx.Err())
	}
	if _, err := w.Reader(bytes.NewReader(nil)).Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the end of a body after a stall: %v, want io.EOF unchanged", err)
	}
}
