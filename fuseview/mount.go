package fuseview

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"hoard.dev/hoard/fusefd"
)

// MountOptions adjust a mount. The zero value is right for most uses.
type MountOptions struct {
	// FsName is the mount's source as df and /proc/mounts show it (default
	// "hoard:" and the root's Name).
	FsName string
	// OwnerOnly keeps other users out even when mounting as root (by
	// default root mounts with allow_other, so that pods and other users
	// can read).
	OwnerOnly bool
	// Debug logs every FUSE request (at debug level, to the root's Logger).
	Debug bool
	// KernelOpens has the kernel send every open and close of a file to
	// hoard. By default, where the kernel supports it, files open without a
	// round trip (FUSE's no-open support): the kernel keeps their pages
	// (each inode is one version of its object) and reads carry no handle.
	KernelOpens bool
}

// maxRequest is the largest read the kernel sends: 256 pages of 4 KiB is the
// default max_pages_limit, and one cache page.
const maxRequest = 1 << 20

// Mount mounts root on mountpoint and serves it until unmounted (see
// Unmount). A Root is mounted once; unmounting closes it. mountpoint may be
// "/dev/fd/N": go-fuse's syntax for a /dev/fuse descriptor that a privileged
// parent opened and mounted already. Then the serving process must not open
// files on the mount itself until DisablePoll has been called on the real
// mountpoint (see there).
func Mount(mountpoint string, root *Root, mo MountOptions) (*fuse.Server, error) {
	f := root.fs
	opts := &fs.Options{
		MountOptions: root.fuseOptions(mountpoint, mo),
		// Positive timeouts are set per reply (see fsys.until). go-fuse
		// caches a miss in the kernel only with this per-mount value.
		NegativeTimeout: negativeTimeout(f.opt),
		UID:             f.opt.UID,
		GID:             f.opt.GID,
		Logger:          slog.NewLogLogger(f.log.Handler(), slog.LevelWarn),
	}
	srv, err := fs.Mount(mountpoint, root, opts)
	if err != nil {
		return nil, fmt.Errorf("mount %s on %s: %w", f.name, mountpoint, err)
	}
	if !mo.KernelOpens && srv.KernelSettings().Flags64()&fuse.CAP_NO_OPEN_SUPPORT != 0 {
		f.noOpen.Store(true)
	}
	if !isMagicFd(mountpoint) {
		if err := setReadahead(mountpoint, maxRequest); err != nil {
			f.log.Debug("fuseview: kernel readahead left at its default", "mountpoint", mountpoint, "error", err)
		}
	}
	f.log.Info("fuseview: mounted", "source", f.name, "mountpoint", mountpoint)
	return srv, nil
}

// fuseOptions are the mount options, each chosen for a read-mostly cache of
// large immutable files.
func (r *Root) fuseOptions(mountpoint string, mo MountOptions) fuse.MountOptions {
	asRoot := os.Geteuid() == 0
	fsName := mo.FsName
	if fsName == "" {
		fsName = "hoard:" + r.fs.name
	}
	level := slog.LevelWarn
	if mo.Debug {
		level = slog.LevelDebug
	}
	return fuse.MountOptions{
		// Reads of up to 1 MiB per request: fewer trips through /dev/fuse,
		// one cache page each. (go-fuse also sets max_read to this.)
		MaxWrite: maxRequest,
		// Kernel readahead of up to 1 MiB. This can only lower what the
		// kernel offers (its bdi default, 128 KiB); Mount raises the bdi's
		// read_ahead_kb when it can.
		MaxReadAhead: maxRequest,
		// Up to 64 asynchronous requests (readahead of parallel readers) in
		// flight; go-fuse's default of 12 serialises many readers.
		MaxBackground: 64,
		// ro: the kernel refuses every change before it reaches us.
		// default_permissions: the kernel enforces FileMode, DirMode, UID
		// and GID itself (no ACCESS requests).
		Options: []string{"ro", "default_permissions"},
		FsName:  fsName,
		Name:    "hoard", // type fuse.hoard
		// As root, mount(2) directly (no fusermount3, no /etc/mtab); go-fuse
		// falls back to fusermount3 if that fails (DirectMountStrict would
		// not). Not for /dev/fd/N: go-fuse tries the direct mount before it
		// looks for the magic name, and would mount on /dev/fd/N itself.
		DirectMount: asRoot && !isMagicFd(mountpoint),
		// Let pods and other users read a mount made by root. fusermount3
		// allows it for others only with user_allow_other in /etc/fuse.conf.
		AllowOther: asRoot && !mo.OwnerOnly,
		// Locks stay local to the kernel: nothing to coordinate on a
		// read-only tree.
		EnableLocks: false,
		// Extended attributes reach the tree (user.hoard.etag is served),
		// which answers security labels and ACLs "not supported" itself
		// (noXattr): go-fuse's IgnoreSecurityLabels would answer some of
		// them ENODATA, which ls -l asks again for every file.
		IgnoreSecurityLabels: false,
		// Reads are answered with bytes (fuse.ReadResultData). go-fuse
		// v2.12.1 still tries splice for those: per reply it takes a pipe,
		// grows it, writes the header into it, then gives up; for a 1 MiB
		// reply growing fails (pipe-max-size is 1 MiB) and it logs a warning
		// each time. Turn splice back on when reads return fuse.ReadResultFd
		// (short-circuit page files).
		DisableSplice: true,
		Debug:         mo.Debug,
		Logger:        slog.NewLogLogger(r.fs.log.Handler(), level),
	}
}

// negativeTimeout is how long the kernel keeps a missing name.
func negativeTimeout(o Options) *time.Duration {
	d := min(o.NegativeTTL, o.kernelLimit(o.EntryTimeout))
	if d <= 0 {
		return nil
	}
	return &d
}

// DisablePoll has the kernel learn that the file system at mountpoint does
// not support poll: it polls go-fuse's reserved file there, which go-fuse
// answers ENOSYS, and the kernel then stops sending POLL for the mount.
//
// Mount does this itself (through go-fuse) except for /dev/fd/N, whose real
// mountpoint it does not know. Until it is done, a Go program that serves the
// mount and opens a file on it deadlocks: os.Open registers the file with the
// runtime's epoll, epoll_ctl sends POLL to the server, and the threads that
// wait in epoll_wait hold the processors the server needs to answer.
func DisablePoll(mountpoint string) error {
	// Raw system calls: os.Open would register the file with epoll itself.
	fd, err := unix.Open(filepath.Join(mountpoint, ".go-fuse-epoll-hack"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("disable poll on %s: %w", mountpoint, err)
	}
	defer unix.Close(fd)
	_, err = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLPRI | unix.POLLOUT}}, 0)
	if err != nil {
		return fmt.Errorf("disable poll on %s: %w", mountpoint, err)
	}
	return nil
}

func isMagicFd(mountpoint string) bool {
	n, ok := strings.CutPrefix(mountpoint, "/dev/fd/")
	_, err := strconv.Atoi(n)
	return ok && err == nil
}

// setReadahead sets the read_ahead_kb of the mount's backing device, so the
// kernel reads ahead by up to n bytes (it offers 128 KiB by default).
// The device comes from mountinfo, not from a stat(2) of the mount point.
func setReadahead(mountpoint string, n int) error {
	conn, mounted, err := fuseConnection(mountpoint)
	if err != nil {
		return err
	}
	if !mounted {
		return fmt.Errorf("set readahead: no FUSE mount on %s", mountpoint)
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", conn>>20, conn&(1<<20-1))
	return os.WriteFile(p, []byte(strconv.Itoa(n>>10)), 0)
}

// Unmount unmounts mountpoint, which srv serves, and waits until srv has
// stopped. If files are still open the mount is detached lazily: it leaves
// the namespace at once and srv serves the open files until they are closed.
// If ctx ends first, the FUSE connection is aborted (reads of the open files
// then fail with ENOTCONN), and Unmount returns ctx's error once srv has
// stopped. It sends no request to the file system, so a hung server cannot
// hang it, and it never waits longer than ctx plus a few seconds. Unmounting
// what is not mounted (any more) just waits for srv.
func Unmount(ctx context.Context, srv *fuse.Server, mountpoint string) error {
	conn, mounted, err := fuseConnection(mountpoint)
	if err != nil {
		return err
	}
	if mounted {
		if err := detach(mountpoint); err != nil {
			return err
		}
	}
	stopped := make(chan struct{})
	go func() {
		srv.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-stopped:
		return nil
	default:
	}
	abortErr := errors.New("not mounted when Unmount began")
	if mounted {
		abortErr = abortConnection(conn)
	}
	select {
	case <-stopped:
		return fmt.Errorf("unmount %s: open files cut off: %w", mountpoint, ctx.Err())
	case <-time.After(5 * time.Second):
		return fmt.Errorf("unmount %s: %w, and the server did not stop (abort: %v)", mountpoint, ctx.Err(), abortErr)
	}
}

// fuseConnection finds the FUSE file system mounted on mountpoint in
// /proc/self/mountinfo (not by stat, which a hung server would not answer)
// and returns its connection number: the kernel's dev_t of the mount, major
// in the high 12 bits and minor in the low 20.
func fuseConnection(mountpoint string) (conn uint64, mounted bool, err error) {
	mounts, err := fusefd.Mounts()
	if err != nil {
		return 0, false, fmt.Errorf("unmount %s: %w", mountpoint, err)
	}
	abs, _ := fusefd.Resolve(mountpoint, mounts) // the one resolver
	if abs == "" {
		return 0, false, fmt.Errorf("unmount %s: empty path", mountpoint)
	}
	for _, m := range mounts {
		if m.MountPoint != abs || !strings.HasPrefix(m.FsType, "fuse") {
			continue
		}
		maj, min, ok := strings.Cut(m.Device, ":")
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		conn, mounted = ma<<20|mi, true // the last match is the top mount
	}
	return conn, mounted, nil
}

// detach unmounts mountpoint, lazily if it is busy; without the privilege
// to, through fusermount3.
func detach(mountpoint string) error {
	err := unix.Unmount(mountpoint, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(mountpoint, unix.MNT_DETACH)
	}
	if errors.Is(err, unix.EPERM) {
		return fusermountUnmount(mountpoint)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mountpoint, err)
	}
	return nil
}

func fusermountUnmount(mountpoint string) error {
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		if bin, err = exec.LookPath("fusermount"); err != nil {
			return fmt.Errorf("unmount %s: not permitted, and no fusermount3", mountpoint)
		}
	}
	// -z: lazily, as above; fusermount refuses a busy mount otherwise.
	if out, err := exec.Command(bin, "-u", "-z", mountpoint).CombinedOutput(); err != nil {
		return fmt.Errorf("unmount %s: %s: %w: %s", mountpoint, bin, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// abortConnection aborts FUSE connection conn through fusectl. If fusectl is
// not mounted, it is mounted on a temporary directory for the purpose.
func abortConnection(conn uint64) error {
	const ctl = "/sys/fs/fuse/connections"
	name := strconv.FormatUint(conn, 10)
	if err := os.WriteFile(filepath.Join(ctl, name, "abort"), []byte("1"), 0); err == nil {
		return nil
	}
	dir, err := os.MkdirTemp("", "hoard-fusectl-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := unix.Mount("fusectl", dir, "fusectl", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount fusectl: %w", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	return os.WriteFile(filepath.Join(dir, name, "abort"), []byte("1"), 0)
}
