// Package nodetest is a fake of what the CSI node service works on: the
// node's mount table (node.Mounts) and its mounter (node.MounterClient). With
// them the node service's logic (stage, publish, unpublish, unstage, stats,
// health, the restore loop) runs in any `go test`, without root or
// /dev/fuse; the real-FUSE tests in tests/csi run the same calls as root.
//
// The fake keeps a table of mounts (as /proc/self/mountinfo would show them)
// and the state of each FUSE connection: mounted but not served yet, served
// (Healthy), or its server gone (Broken, as after a mounter crash: see
// KillMounter). Directories are real ones (the service creates and removes
// them); only mounts are pretend. What it never does: mount anything, or
// answer a path it was not told about as mounted.
package nodetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"hoard.dev/hoard/fusefd"
	"hoard.dev/hoard/node/mounter"
)

// connState is the state of one fake FUSE connection.
type connState int

const (
	unserved connState = iota // mounted, FUSE_INIT not answered: accesses hang
	served                    // a server answers
	dead                      // its server is gone: ENOTCONN
)

// Mounts is a fake node.Mounts. The zero value is not usable: use New.
type Mounts struct {
	mu struct {
		sync.Mutex
		table   []fusefd.MountInfo
		conns   map[string]connState // by device
		nextDev int
		nextID  int
		calls   map[string]int
	}
}

// New returns an empty mount table and a mounter that serves on it.
func New() (*Mounts, *Mounter) {
	m := &Mounts{}
	m.mu.conns = make(map[string]connState)
	m.mu.calls = make(map[string]int)
	m.mu.nextDev, m.mu.nextID = 40, 100
	return m, &Mounter{mounts: m, sessions: map[string]mounter.SessionInfo{}}
}

// resolve is the path mountinfo would show for p (fusefd.Resolve, as the
// node service resolves it). Callers hold mu.
func (m *Mounts) resolve(p string) string {
	r, _ := fusefd.Resolve(p, m.mu.table)
	if r == "" {
		return filepath.Clean(p)
	}
	return r
}

func (m *Mounts) count(op string) { m.mu.calls[op]++ }

// Calls returns how often op (MountFUSE, Unmount, BindReadOnly, ...) was
// called.
func (m *Mounts) Calls(op string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.calls[op]
}

// top returns the index of the visible mount on path, or -1. Callers hold mu.
func (m *Mounts) top(path string) int {
	for i := len(m.mu.table) - 1; i >= 0; i-- {
		if m.mu.table[i].MountPoint == path {
			return i
		}
	}
	return -1
}

// MountFUSE mounts a new fake FUSE connection on target, an existing
// directory with nothing mounted on it, and returns a stand-in for its
// /dev/fuse descriptor (an open /dev/null).
func (m *Mounts) MountFUSE(target string, o fusefd.Options) (*os.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("MountFUSE")
	p := m.resolve(target)
	if i := m.top(p); i >= 0 {
		return nil, fmt.Errorf("fake mount %q: already a mount point: %w", target, unix.EBUSY)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("fake mount %q: %w", target, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("fake mount %q: %w", target, unix.ENOTDIR)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	dev := fmt.Sprintf("0:%d", m.mu.nextDev)
	m.mu.nextDev++
	m.mu.nextID++
	src := o.FsName
	if src == "" {
		src = fusefd.DefaultFsName
	}
	m.mu.table = append(m.mu.table, fusefd.MountInfo{ID: m.mu.nextID, Device: dev, Root: "/", MountPoint: p,
		Options: "ro,nosuid,nodev", FsType: fusefd.FSType, Source: src})
	m.mu.conns[dev] = unserved
	return f, nil
}

// Check reports NotMounted, Healthy (served), Broken (its server gone), or
// for a connection nobody serves yet Unknown with fusefd.ErrNotResponding
// once ctx is done, as a statfs that hangs would.
func (m *Mounts) Check(ctx context.Context, path string) (fusefd.State, error) {
	m.mu.Lock()
	m.count("Check")
	i := m.top(m.resolve(path))
	var st connState
	if i >= 0 {
		st = m.mu.conns[m.mu.table[i].Device]
	}
	m.mu.Unlock()
	switch {
	case i < 0:
		return fusefd.NotMounted, nil
	case st == served:
		return fusefd.Healthy, nil
	case st == dead:
		return fusefd.Broken, nil
	}
	<-ctx.Done()
	return fusefd.Unknown, fmt.Errorf("fake check %q: %w: %w", path, fusefd.ErrNotResponding, ctx.Err())
}

// Unmount removes the topmost mount on path; nothing mounted is fine. A
// connection that no mount shows any more ends, as the kernel's does.
func (m *Mounts) Unmount(path string, lazy bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("Unmount")
	i := m.top(m.resolve(path))
	if i < 0 {
		return nil
	}
	dev := m.mu.table[i].Device
	m.mu.table = slices.Delete(m.mu.table, i, i+1)
	if !slices.ContainsFunc(m.mu.table, func(e fusefd.MountInfo) bool { return e.Device == dev }) {
		delete(m.mu.conns, dev)
	}
	return nil
}

// List returns a copy of the table, in mount order.
func (m *Mounts) List() ([]fusefd.MountInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("List")
	return slices.Clone(m.mu.table), nil
}

// BindReadOnly stacks a bind of source's visible mount on target, an
// existing directory (or mount point).
func (m *Mounts) BindReadOnly(source, target string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("BindReadOnly")
	i := m.top(m.resolve(source))
	if i < 0 {
		return fmt.Errorf("fake bind %s on %s: nothing mounted on the source: %w", source, target, unix.EINVAL)
	}
	p := m.resolve(target)
	if m.top(p) < 0 {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			return fmt.Errorf("fake bind %s on %s: target is not a directory (%v): %w", source, target, err, unix.ENOENT)
		}
	}
	e := m.mu.table[i]
	m.mu.nextID++
	e.ID, e.MountPoint, e.Options = m.mu.nextID, p, "ro,nosuid,nodev"
	m.mu.table = append(m.mu.table, e)
	return nil
}

// Statfs answers for a served mount; ENOTCONN for a dead one.
func (m *Mounts) Statfs(ctx context.Context, path string) (unix.Statfs_t, error) {
	st, err := m.Check(ctx, path)
	switch {
	case err != nil:
		return unix.Statfs_t{}, err
	case st == fusefd.Broken:
		return unix.Statfs_t{}, unix.ENOTCONN
	case st == fusefd.NotMounted:
		return unix.Statfs_t{}, unix.EINVAL
	}
	return unix.Statfs_t{Bsize: 4096, Blocks: 1 << 30, Bfree: 1 << 30, Bavail: 1 << 30, Files: 1 << 20, Ffree: 1 << 20}, nil
}

func (m *Mounts) serve(dev string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.mu.conns[dev]
	switch {
	case !ok:
		return fmt.Errorf("fake: no mount of device %s", dev)
	case st != unserved:
		return fmt.Errorf("fake: device %s is served already (or dead)", dev)
	}
	m.mu.conns[dev] = served
	return nil
}

// killAll marks every served connection dead.
func (m *Mounts) killAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for dev, st := range m.mu.conns {
		if st == served {
			m.mu.conns[dev] = dead
		}
	}
}

// Mounter is a fake node.MounterClient serving on a fake Mounts.
type Mounter struct {
	mounts *Mounts

	mu       sync.Mutex
	down     bool
	sessions map[string]mounter.SessionInfo // by device
	nextID   uint64
	// Refuse, if set, is the error Serve returns instead of serving
	// (a bucket that cannot be listed, say).
	Refuse error
}

// ErrDown is what a stopped fake mounter answers (wrapping
// mounter.ErrUnreachable, as the real client does).
var ErrDown = fmt.Errorf("%w: fake mounter stopped", mounter.ErrUnreachable)

// KillMounter stops the mounter: every connection it served dies (Broken)
// and calls fail until StartMounter.
func (f *Mounter) KillMounter() {
	f.mu.Lock()
	f.down = true
	f.sessions = map[string]mounter.SessionInfo{}
	f.mu.Unlock()
	f.mounts.killAll()
}

// StartMounter starts a new, empty mounter.
func (f *Mounter) StartMounter() {
	f.mu.Lock()
	f.down = false
	f.mu.Unlock()
}

// Serve serves req on the connection of req.Device and consumes file.
func (f *Mounter) Serve(ctx context.Context, file *os.File, req mounter.Request) (*mounter.SessionInfo, error) {
	file.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.down:
		return nil, ErrDown
	case f.Refuse != nil:
		return nil, f.Refuse
	case req.VolumeID == "" || req.Source == nil || req.Device == "":
		return nil, errors.New("fake mounter: serve without volume, source or device")
	}
	if err := f.mounts.serve(req.Device); err != nil {
		return nil, err
	}
	f.nextID++
	s := mounter.SessionInfo{ID: f.nextID, VolumeID: req.VolumeID, StagingPath: req.StagingPath, Device: req.Device,
		Source: req.Source.String(), Started: time.Now()}
	f.sessions[req.Device] = s
	return &s, nil
}

// List describes the sessions of connections still mounted.
func (f *Mounter) List(ctx context.Context) (*mounter.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, ErrDown
	}
	r := &mounter.Response{OK: true, Sessions: []mounter.SessionInfo{}}
	f.mounts.mu.Lock()
	for dev, s := range f.sessions {
		if _, live := f.mounts.mu.conns[dev]; live {
			r.Sessions = append(r.Sessions, s)
		}
	}
	f.mounts.mu.Unlock()
	slices.SortFunc(r.Sessions, func(a, b mounter.SessionInfo) int { return int(a.ID) - int(b.ID) })
	return r, nil
}

// Ping answers while the mounter runs.
func (f *Mounter) Ping(ctx context.Context) (*mounter.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, ErrDown
	}
	return &mounter.Response{OK: true, Version: "fake"}, nil
}

// Drop forgets the volume's sessions whose connection has ended and says
// how many are left.
func (f *Mounter) Drop(ctx context.Context, volumeID string) (int, error) {
	r, err := f.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range r.Sessions {
		if s.VolumeID == volumeID {
			n++
		}
	}
	return n, nil
}
