package stall

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// Watch cancels a transfer that makes no progress for d. It is safe for
// one reader at a time (a body is read by one goroutine).
type Watch struct {
	d     time.Duration
	timer *time.Timer
	cause error // set by WithContext: what Err says after a stall
	fired atomic.Bool
}

// Start starts watching a transfer whose request is about to go out:
// cancel is called unless progress (Reader's reads) comes within d of the
// start and of every read after it, or Stop is called first.
func Start(d time.Duration, cancel func()) *Watch {
	w := &Watch{d: d}
	w.timer = time.AfterFunc(d, func() {
		w.fired.Store(true)
		cancel()
	})
	return w
}

// WithContext is Start for a request made with the returned context, which
// is cancelled once the transfer stalls; the errors of the Watch's Reader
// then wrap cause (see Err). release stops the watch and cancels the
// context: call it when the transfer is over.
func WithContext(parent context.Context, d time.Duration, cause error) (ctx context.Context, w *Watch, release func()) {
	ctx, cancel := context.WithCancel(parent)
	w = Start(d, cancel)
	w.cause = cause
	return ctx, w, func() {
		w.Stop()
		cancel()
	}
}

// Err returns err, or, when the watch fired, its cause (WithContext) with
// err's text: the request's own error then says only "context canceled".
func (w *Watch) Err(err error) error {
	if err == nil || w.cause == nil || !w.fired.Load() {
		return err
	}
	return fmt.Errorf("%w (%v)", w.cause, err)
}

// Reader returns r whose every Read restarts the watch (the peer made
// progress, or said it is done) and whose errors pass through Err.
func (w *Watch) Reader(r io.Reader) io.Reader { return &reader{r: r, w: w} }

// Stop ends the watch. It reports false if the watch had fired already.
func (w *Watch) Stop() bool { return w.timer.Stop() }

// Pause stops the clock while the reader waits on its own side (not on the
// peer), until resume restarts it for a whole d. If the watch had fired
// already, resume does nothing.
func (w *Watch) Pause() (resume func()) {
	if !w.timer.Stop() {
		return func() {}
	}
	return func() { w.timer.Reset(w.d) }
}

type reader struct {
	r io.Reader
	w *Watch
}

func (s *reader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.w.timer.Reset(s.w.d)
	if err != nil && err != io.EOF {
		err = s.w.Err(err)
	}
	return n, err
}
