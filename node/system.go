package node

import (
	"context"
	"os"

	"golang.org/x/sys/unix"

	"hoard.dev/hoard/fusefd"
	"hoard.dev/hoard/node/mounter"
)

// Mounts is everything the node service does to the node's mount table.
// The service's logic runs on it, so that it can run without root against
// a fake (node/nodetest); SystemMounts is the real one. Every decision about
// a path is made from List (mountinfo), never by a stat(2) of the path.
type Mounts interface {
	// MountFUSE opens /dev/fuse and mounts it on target (fusefd.Mount).
	MountFUSE(target string, o fusefd.Options) (*os.File, error)
	// Check says what is on path (fusefd.CheckContext).
	Check(ctx context.Context, path string) (fusefd.State, error)
	// Unmount removes the topmost mount on path (fusefd.Unmount).
	Unmount(path string, lazy bool) error
	// List returns the mount table in mount order (fusefd.Mounts).
	List() ([]fusefd.MountInfo, error)
	// BindReadOnly binds source on target, read-only (see bindReadOnly).
	BindReadOnly(source, target string) error
	// Statfs is statfs(2) of path, bounded by ctx (see statfs).
	Statfs(ctx context.Context, path string) (unix.Statfs_t, error)
}

// MounterClient is what the node service asks of the node's mounter
// (mounter.Client is the real one).
type MounterClient interface {
	Serve(ctx context.Context, f *os.File, req mounter.Request) (*mounter.SessionInfo, error)
	List(ctx context.Context) (*mounter.Response, error)
	Ping(ctx context.Context) (*mounter.Response, error)
	Drop(ctx context.Context, volumeID string) (int, error)
}

// SystemMounts is the node's real mount table, through package fusefd and
// mount(2): it needs CAP_SYS_ADMIN and /dev/fuse.
type SystemMounts struct{}

var _ Mounts = SystemMounts{}

func (SystemMounts) MountFUSE(target string, o fusefd.Options) (*os.File, error) {
	return fusefd.Mount(target, o)
}

func (SystemMounts) Check(ctx context.Context, path string) (fusefd.State, error) {
	return fusefd.CheckContext(ctx, path)
}

func (SystemMounts) Unmount(path string, lazy bool) error { return fusefd.Unmount(path, lazy) }

func (SystemMounts) List() ([]fusefd.MountInfo, error) { return fusefd.Mounts() }

func (SystemMounts) BindReadOnly(source, target string) error { return bindReadOnly(source, target) }

func (SystemMounts) Statfs(ctx context.Context, path string) (unix.Statfs_t, error) {
	return statfs(ctx, path)
}
