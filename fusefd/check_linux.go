package fusefd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// State is what Check found on a path.
type State int

const (
	// Unknown is returned together with an error: the state could not be
	// determined (mountinfo unreadable, server not answering in time, ...).
	Unknown State = iota
	// NotMounted: nothing is mounted on the path (or the path does not exist).
	NotMounted
	// Healthy: a file system is mounted there and its server answered.
	Healthy
	// Broken: a FUSE mount whose server is gone; every access fails with
	// ENOTCONN ("Transport endpoint is not connected"). Unmount it.
	Broken
)

func (s State) String() string {
	switch s {
	case NotMounted:
		return "NotMounted"
	case Healthy:
		return "Healthy"
	case Broken:
		return "Broken"
	}
	return "Unknown"
}

// DefaultCheckTimeout bounds Check.
const DefaultCheckTimeout = 10 * time.Second

// ErrNotResponding means a mount's server did not answer in time: it is
// stuck, or it has not answered FUSE_INIT yet.
var ErrNotResponding = errors.New("FUSE server not responding")

// Check reports whether path is a mount point and whether its file system
// answers, within DefaultCheckTimeout. See CheckContext.
func Check(path string) (State, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultCheckTimeout)
	defer cancel()
	return CheckContext(ctx, path)
}

// CheckContext reports what is on path: NotMounted when /proc/self/mountinfo
// lists no mount there, otherwise Healthy or Broken by asking the file system
// with statfs(2), which FUSE always forwards to the server (stat may be
// answered from the kernel's attribute cache). Broken means ENOTCONN.
//
// A server that never answers cannot be interrupted: the probe then stays
// blocked in the kernel, and CheckContext returns Unknown and an error wrapping
// ErrNotResponding when ctx is done. At most one probe per path is in flight;
// later calls wait for the same one.
func CheckContext(ctx context.Context, path string) (State, error) {
	p, m, err := locate(path)
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		return NotMounted, nil
	case err != nil:
		return Unknown, fmt.Errorf("fusefd: check %q: %w", path, err)
	case m == nil:
		return NotMounted, nil
	}
	pr := startProbe(p)
	select {
	case <-pr.done:
	case <-ctx.Done():
		return Unknown, fmt.Errorf("fusefd: check %q (%s from %q): %w: %w",
			path, m.FsType, m.Source, ErrNotResponding, context.Cause(ctx))
	}
	switch {
	case pr.err == nil, errors.Is(pr.err, unix.ENOSYS):
		// ENOSYS: a server without statfs answered.
		return Healthy, nil
	case errors.Is(pr.err, unix.ENOTCONN), errors.Is(pr.err, unix.ECONNABORTED):
		return Broken, nil
	}
	return Unknown, fmt.Errorf("fusefd: check %q (%s from %q): statfs: %w", path, m.FsType, m.Source, pr.err)
}

// probe is one statfs(2) of a mount point, shared by concurrent checks.
type probe struct {
	done chan struct{}
	err  error // set before done is closed
}

var probes struct {
	mu     sync.Mutex
	byPath map[string]*probe
}

func startProbe(path string) *probe {
	probes.mu.Lock()
	defer probes.mu.Unlock()
	if p := probes.byPath[path]; p != nil {
		return p
	}
	if probes.byPath == nil {
		probes.byPath = make(map[string]*probe)
	}
	p := &probe{done: make(chan struct{})}
	probes.byPath[path] = p
	go func() {
		var st unix.Statfs_t
		err := unix.Statfs(path, &st)
		for errors.Is(err, unix.EINTR) {
			err = unix.Statfs(path, &st)
		}
		p.err = err
		probes.mu.Lock()
		delete(probes.byPath, path)
		probes.mu.Unlock()
		close(p.done)
	}()
	return p
}
