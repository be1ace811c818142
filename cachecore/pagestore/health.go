package pagestore

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Fault is why a store stopped using its disk: the disk is full, read-only,
// or failing with I/O errors. A faulted store is degraded, not broken: its
// caller serves pages from the bucket as if every page were a miss
// (pass-through) and nothing it stores or returns can be wrong.
type Fault int

// Faults, from no fault to the worst.
const (
	FaultNone     Fault = iota
	FaultFull           // writes fail with ENOSPC or EDQUOT: cached pages are still served
	FaultReadOnly       // writes fail with EROFS: cached pages are still served
	FaultIO             // reads or writes fail with EIO or another error: the disk is not used at all
)

// Faults lists every fault but FaultNone, for metrics.
func Faults() []Fault { return []Fault{FaultFull, FaultReadOnly, FaultIO} }

func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultFull:
		return "full"
	case FaultReadOnly:
		return "read_only"
	case FaultIO:
		return "io_error"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// ErrDegraded is returned by Put while the store's disk is faulted: the page
// is not cached. Callers serve it all the same.
var ErrDegraded = errors.New("page store degraded: its disk is failing, pages are not cached")

// DefaultFaultRetry is how long a faulted store waits before it tries its
// disk again (one Put, and for FaultIO one Get, go through as a probe).
const DefaultFaultRetry = 10 * time.Second

// Health is the state of a store's disk.
type Health struct {
	Fault Fault
	Err   error     // the error that caused it (nil without a fault)
	Since time.Time // when the fault began
}

// faultOf classifies an error of a disk write or read.
func faultOf(err error) Fault {
	switch {
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		return FaultFull
	case errors.Is(err, syscall.EROFS):
		return FaultReadOnly
	}
	return FaultIO
}

// Health returns the state of the store's disk.
func (s *Store) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.health
}

// skipDiskLocked reports whether an operation must not touch the disk now: the
// store is faulted (for reads: with FaultIO) and its next probe is not due.
// When a probe is due (reads and writes are probed apart), the caller
// becomes the probe and others keep skipping for another FaultRetry. The caller holds s.mu.
func (s *Store) skipDiskLocked(read bool, now time.Time) bool {
	h := s.mu.health
	if h.Fault == FaultNone || (read && h.Fault != FaultIO) {
		return false
	}
	probe := &s.mu.probeWrite
	if read {
		probe = &s.mu.probeRead
	}
	if now.Before(*probe) {
		return true
	}
	*probe = now.Add(s.faultRetry)
	return false
}

// noteFault records a failed disk operation: the store degrades (or, if it
// already is, to the worse fault). It logs when the state changes.
func (s *Store) noteFault(op string, err error) {
	f := faultOf(err)
	now := time.Now()
	s.mu.Lock()
	prev := s.mu.health
	if f > prev.Fault {
		s.mu.health = Health{Fault: f, Err: err, Since: now}
		if prev.Fault != FaultNone {
			s.mu.health.Since = prev.Since
		}
	}
	s.mu.probeRead, s.mu.probeWrite = now.Add(s.faultRetry), now.Add(s.faultRetry)
	changed := f > prev.Fault
	s.mu.Unlock()
	if changed {
		s.log.Error("page store disk failing: pages are served from the bucket without caching until it recovers",
			"dir", s.slabs.dir, "fault", f.String(), "op", op, "error", err, "retry_every", s.faultRetry)
	}
}

// noteWritten records a write that succeeded: the fault, if any, is over.
// (A read alone does not show that the disk takes writes again.)
func (s *Store) noteWritten() {
	s.mu.Lock()
	h := s.mu.health
	if h.Fault == FaultNone {
		s.mu.Unlock()
		return
	}
	s.mu.health = Health{}
	s.mu.Unlock()
	s.log.Info("page store disk healthy again: caching resumes", "dir", s.slabs.dir,
		"was", h.Fault.String(), "for", time.Since(h.Since).Round(time.Second))
}
