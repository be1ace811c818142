package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Disk is a small ext4 file system on a loop device that a test made: a
// cache disk that can fill up, turn read-only or fail every operation with
// EIO, as real disks do. Needs root, mkfs.ext4 and loop devices.
type Disk struct {
	// Dir is where it is mounted, as the processes using it see it.
	Dir   string
	image string
	// path is Dir as the test process reaches it (through Root).
	path string
	cmd  func(name string, arg ...string) *exec.Cmd
}

// DiskOptions configure NewDisk.
type DiskOptions struct {
	// Size of the file system (default 64 MiB).
	Size int64
	// Command makes the commands that mount, remount and unmount it
	// (default exec.Command). A test node's command mounts it in the
	// node's mount namespace.
	Command func(name string, arg ...string) *exec.Cmd
	// Root is the prefix through which the test reaches the mount
	// namespace the commands run in (e.g. /proc/PID/root); "" for its own.
	Root string
}

// RequireDisk skips the test (fails it with HOARD_REQUIRE_ALL=1) unless
// NewDisk can work here.
func RequireDisk(t testing.TB) {
	t.Helper()
	var err error
	if os.Geteuid() != 0 {
		err = errors.New("not running as root")
	} else if _, lerr := exec.LookPath("mkfs.ext4"); lerr != nil {
		err = errors.New("mkfs.ext4 not found (Debian: e2fsprogs)")
	} else if _, serr := os.Stat("/dev/loop-control"); serr != nil {
		err = fmt.Errorf("no loop devices: %w", serr)
	}
	RequireOrSkip(t, "a loop-mounted ext4 disk (root, e2fsprogs, loop devices)", err)
}

// NewDisk makes an ext4 image in a temp dir and mounts it on dir (made if
// missing). It is unmounted and removed when the test ends.
func NewDisk(t testing.TB, dir string, o DiskOptions) *Disk {
	t.Helper()
	RequireDisk(t)
	if o.Size == 0 {
		o.Size = 64 << 20
	}
	if o.Command == nil {
		o.Command = exec.Command
	}
	d := &Disk{Dir: dir, image: filepath.Join(t.TempDir(), "disk.img"), path: o.Root + dir, cmd: o.Command}
	if err := os.MkdirAll(d.path, 0o755); err != nil {
		t.Fatalf("testenv: disk: %v", err)
	}
	f, err := os.Create(d.image)
	if err == nil {
		err = f.Truncate(o.Size)
		f.Close()
	}
	if err != nil {
		t.Fatalf("testenv: disk image: %v", err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard", d.image).CombinedOutput(); err != nil {
		t.Fatalf("testenv: mkfs.ext4: %v\n%s", err, out)
	}
	// errors=remount-ro: an error turns the file system read-only, as
	// SetReadOnly does on purpose.
	if err := d.run("mount", "-o", "loop,errors=remount-ro", d.image, dir); err != nil {
		t.Fatalf("testenv: mount disk: %v", err)
	}
	// Lazily: a process that still has files open there keeps it alive
	// until it exits; the loop device goes with the last reference.
	t.Cleanup(func() { d.run("umount", "-l", dir) })
	return d
}

func (d *Disk) run(name string, arg ...string) error {
	cmd := d.cmd(name, arg...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %w: %s", name, arg, err, out)
	}
	return nil
}

// SetReadOnly turns the file system read-only the way a failing disk
// does: it reports an error (ext4's trigger_fs_error), and the kernel
// remounts it read-only at once, files open for writing or not. Writes
// fail with EROFS from then on; reads go on. It cannot be undone while
// mounted.
func (d *Disk) SetReadOnly() error {
	out, err := exec.Command("losetup", "-n", "-O", "NAME", "-j", d.image).Output()
	if err != nil {
		return fmt.Errorf("loop device of %s: %w", d.image, err)
	}
	dev := filepath.Base(strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]))
	if dev == "." || dev == "" {
		return fmt.Errorf("no loop device for %s", d.image)
	}
	trigger := filepath.Join("/sys/fs/ext4", dev, "trigger_fs_error")
	if err := os.WriteFile(trigger, []byte("testenv: disk turned read-only on purpose"), 0o200); err != nil {
		return fmt.Errorf("turn %s read-only: %w", d.Dir, err)
	}
	return nil
}

// fillName is the file Fill makes.
const fillName = ".testenv-fill"

// Fill takes the free space of the file system (but keep bytes) with a file
// of its own, so that writes beyond keep fail with ENOSPC; Unfill removes it.
func (d *Disk) Fill(keep int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(d.path, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", d.path, err)
	}
	free := int64(st.Bavail)*st.Bsize - keep
	if free <= 0 {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(d.path, fillName), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	// Fallocate takes the blocks without writing them; ENOSPC near the end
	// is fine, the disk is full either way.
	if err := unix.Fallocate(int(f.Fd()), 0, 0, free); err != nil && !errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("fill %s: %w", d.path, err)
	}
	return nil
}

// Unfill removes what Fill took.
func (d *Disk) Unfill() error { return os.Remove(filepath.Join(d.path, fillName)) }

// ext4's shutdown ioctl (EXT4_IOC_SHUTDOWN) and its flag to drop the
// journal: the file system behaves as a disk that died.
const (
	ext4IOCShutdown       = 0x8004587d
	ext4GoingFlagsNoFlush = 2
)

// Fail shuts the file system down: from now on every read and write on it
// fails with EIO, as on a dead disk. It cannot be undone while mounted.
func (d *Disk) Fail() error {
	f, err := os.Open(d.path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := uint32(ext4GoingFlagsNoFlush)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ext4IOCShutdown, uintptr(unsafe.Pointer(&flags))); errno != 0 {
		return fmt.Errorf("shut down %s: %w", d.path, errno)
	}
	return nil
}

// Used returns the bytes the file system has in use.
func (d *Disk) Used() (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(d.path, &st); err != nil {
		return 0, err
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize, nil
}

// String describes the disk for messages.
func (d *Disk) String() string { return d.Dir + " (" + strconv.Quote(d.image) + ")" }
