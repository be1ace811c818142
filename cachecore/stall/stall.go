package stall

import (
	"io"
	"time"
)

// Watch cancels a transfer that makes no progress for d. It is safe for
// one reader at a time (a body is read by one goroutine).
type Watch struct {
	d     time.Duration
	timer *time.Timer
}

// Start starts watching a transfer whose request is about to go out:
// cancel is called unless progress (Reader's reads) comes within d of the
// start and of every read after it, or Stop is called first.
func Start(d time.Duration, cancel func()) *Watch {
	return &Watch{d: d, timer: time.AfterFunc(d, cancel)}
}

// Reader returns r whose every Read restarts the watch: the peer made
// progress, or said it is done.
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
	return n, err
}
