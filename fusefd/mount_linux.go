package fusefd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/sys/unix"
)

// FSType is the file system type of every hoard mount, as mount(2) takes it
// and /proc/self/mountinfo shows it: the kernel's "fuse" with subtype "hoard".
const FSType = "fuse.hoard"

// DefaultFsName is the mount source used when Options.FsName is empty.
const DefaultFsName = "hoard"

// maxFsNameLen is the kernel's bound on a mount(2) source string (PATH_MAX
// including the terminating NUL).
const maxFsNameLen = 4095

// Options describe one mount. The zero value is a read-write mount owned by
// root, visible to root only.
type Options struct {
	// FsName is the mount source that mountinfo, df and findmnt show, e.g.
	// "hoard:s3://bucket/prefix". Empty means DefaultFsName. At most 4095
	// bytes; no NUL.
	FsName string
	// ReadOnly mounts with MS_RDONLY: the kernel refuses writes before they
	// reach the server.
	ReadOnly bool
	// AllowOther lets users other than UserID into the mount (allow_other).
	// Without it even root is refused (unless the fuse module was loaded with
	// allow_sys_admin_access), so pods running as any user need it.
	AllowOther bool
	// DefaultPermissions makes the kernel check file modes and owners itself
	// (default_permissions) instead of leaving access checks to the server.
	DefaultPermissions bool
	// UserID and GroupID name the mount's owner (user_id=, group_id=). Zero
	// is root, the CSI node plugin.
	UserID, GroupID uint32
	// MaxRead caps one FUSE read request in bytes (max_read=). Zero leaves it
	// to the kernel, which then bounds reads by what the server negotiates in
	// FUSE_INIT (go-fuse: MountOptions.MaxWrite).
	MaxRead int
}

func (o Options) source() string {
	if o.FsName == "" {
		return DefaultFsName
	}
	return o.FsName
}

func (o Options) validate() error {
	src := o.source()
	if len(src) > maxFsNameLen {
		return fmt.Errorf("FsName is %d bytes, more than %d", len(src), maxFsNameLen)
	}
	if strings.IndexByte(src, 0) >= 0 {
		return errors.New("FsName contains a NUL byte")
	}
	if o.MaxRead < 0 {
		return fmt.Errorf("MaxRead %d is negative", o.MaxRead)
	}
	return nil
}

// data is the FUSE mount data string for descriptor fd on a directory. The
// kernel requires fd, rootmode, user_id and group_id, and rejects options it
// does not know with EINVAL.
func (o Options) data(fd int) string {
	opts := []string{
		"fd=" + strconv.Itoa(fd),
		"rootmode=" + strconv.FormatUint(unix.S_IFDIR, 8),
		"user_id=" + strconv.FormatUint(uint64(o.UserID), 10),
		"group_id=" + strconv.FormatUint(uint64(o.GroupID), 10),
	}
	if o.AllowOther {
		opts = append(opts, "allow_other")
	}
	if o.DefaultPermissions {
		opts = append(opts, "default_permissions")
	}
	if o.MaxRead > 0 {
		opts = append(opts, "max_read="+strconv.Itoa(o.MaxRead))
	}
	return strings.Join(opts, ",")
}

func (o Options) flags() uintptr {
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	if o.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	return flags
}

// Mount opens /dev/fuse and mounts it on target, an existing directory that is
// not a mount point yet, with type FSType. It returns the /dev/fuse file (close
// on exec, blocking), which the caller hands to a server with Send (or serves
// itself through ServePath) and then closes.
//
// Until a server answers FUSE_INIT on that file, every access to target blocks;
// if the file is closed before that, the mount is Broken and must be Unmounted.
//
// Errors name target and wrap the cause: fs.ErrNotExist when target is missing,
// unix.ENOTDIR when it is not a directory, unix.EBUSY when something is already
// mounted there (a staged volume is recognised with Check, not by mounting
// again), unix.ENOTCONN when target is a broken FUSE mount, and the errno of
// open(2) or mount(2) otherwise (EPERM without CAP_SYS_ADMIN).
func Mount(target string, o Options) (*os.File, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("fusefd: mount %q: %w", target, err)
	}
	// Look in mountinfo before touching target: stat on a mount point whose
	// server hangs would hang Mount too.
	path, m, err := locate(target)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, fmt.Errorf("fusefd: mount %q: target does not exist: %w", target, err)
	case errors.Is(err, unix.ENOTDIR):
		return nil, fmt.Errorf("fusefd: mount %q: target is not a directory: %w", target, err)
	case err != nil:
		return nil, fmt.Errorf("fusefd: mount %q: %w", target, err)
	case m != nil:
		return nil, fmt.Errorf("fusefd: mount %q: already a mount point (%s from %q): %w",
			target, m.FsType, m.Source, unix.EBUSY)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			return nil, fmt.Errorf("fusefd: mount %q: target does not exist: %w", target, err)
		case errors.Is(err, unix.ENOTCONN):
			return nil, fmt.Errorf("fusefd: mount %q: target is a broken FUSE mount; unmount it first: %w", target, err)
		}
		return nil, fmt.Errorf("fusefd: mount %q: stat target: %w", target, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("fusefd: mount %q: target is not a directory: %w", target, unix.ENOTDIR)
	}

	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("fusefd: mount %q: open /dev/fuse: %w", target, err)
	}
	data := o.data(fd)
	if err := unix.Mount(o.source(), path, FSType, o.flags(), data); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fusefd: mount %q: mount(2) source %q type %q data %q: %w",
			target, o.source(), FSType, data, err)
	}
	return os.NewFile(uintptr(fd), "/dev/fuse"), nil
}

// busyRetryFor bounds the last wait of Unmount's retries on EBUSY, and
// busyRetries their number: 5, 10, ... 320 ms, about 0.6 s in all.
const (
	busyRetryFor = 320 * time.Millisecond
	busyRetries  = 8
)

// Unmount unmounts whatever is mounted on target; lazy detaches it (MNT_DETACH)
// even while files on it are open, which is how a Broken mount with stuck
// users is cleaned up. It does not follow a symbolic link at the last step.
// A non-lazy Unmount retries EBUSY for about 0.6 s before it gives up: the
// kernel holds the mount busy until the server has answered the RELEASE of
// the last closed file.
//
// Unmount returns nil when target does not exist or is not a mount point, so
// the CSI node's unstage can call it again after a crash or a drain. Only the
// topmost of several mounts stacked on target is removed.
//
// Unmounting ends the FUSE connection (after a lazy one, once the last file
// open on it is closed): the server's go-fuse Serve and Wait return.
func Unmount(target string, lazy bool) error {
	path, m, err := locate(target)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fusefd: unmount %q: %w", target, err)
	}
	if m == nil {
		return nil
	}
	flags := unix.UMOUNT_NOFOLLOW
	if lazy {
		flags |= unix.MNT_DETACH
	}
	// A FUSE file's last close sends RELEASE to the server asynchronously,
	// and the mount stays busy until the server has answered: a non-lazy
	// unmount right after a reader closed its file sees EBUSY for a moment
	// (seen here: one 5 ms retry, now and then). EBUSY is retried, 5 ms
	// doubling up to busyRetryFor; any other answer is final.
	_, err = backoff.Retry(context.Background(), func() (struct{}, error) {
		err := unix.Unmount(path, flags)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 5 * time.Millisecond, Multiplier: 2,
		MaxInterval: busyRetryFor}), backoff.WithMaxTries(busyRetries))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT):
		// Gone since we looked (another unstage won the race)?
		if _, m, lerr := locate(target); lerr == nil && m == nil {
			return nil
		}
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("fusefd: unmount %q: %w (files open on it; unmount lazily)", target, err)
	}
	return fmt.Errorf("fusefd: unmount %q: %w", target, err)
}
