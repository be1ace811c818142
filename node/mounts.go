package node

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"hoard.dev/hoard/fusefd"
)

// mountEntry is one line of /proc/self/mountinfo. Every decision about a
// path is made from these, never by stat or open on the path: a FUSE mount
// whose server hangs would hang the caller.
type mountEntry struct {
	ID, Parent int
	// Device is "major:minor": for FUSE, the connection. A bind of a FUSE
	// mount shows the same device as the mount itself.
	Device     string
	Root       string
	MountPoint string
	Options    string   // per mount: ro/rw, nosuid, ...
	Optional   []string // shared:N, master:N, ...
	FsType     string
	Source     string
}

func (e mountEntry) isHoard() bool { return e.FsType == fusefd.FSType }

// readMounts parses /proc/self/mountinfo, in mount order: of several mounts
// stacked on one point the last is the visible one.
func readMounts() ([]mountEntry, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMounts(b)
}

// parseMounts parses lines of the form
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMounts(b []byte) ([]mountEntry, error) {
	var out []mountEntry
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 7 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("malformed mountinfo line %q", bytes.TrimSpace(line))
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("malformed mountinfo line %q", bytes.TrimSpace(line))
		}
		out = append(out, mountEntry{
			ID: id, Parent: parent, Device: f[2],
			Root:       unescape(f[3]),
			MountPoint: unescape(f[4]),
			Options:    f[5],
			Optional:   f[6:sep],
			FsType:     unescape(f[sep+1]),
			Source:     unescape(f[sep+2]),
		})
	}
	return out, nil
}

// unescape undoes the kernel's octal escapes (\040 for a space) in a field.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// resolve returns the path the kernel shows in mountinfo for p: absolute,
// with symbolic links in its directory resolved (the last element is not
// followed, and a missing directory leaves the path as it is).
func resolve(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	if abs == "/" {
		return abs
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs))
	}
	return abs
}

// stackAt returns the mounts on path (as resolve gives it), bottom first;
// the last is the one the path shows.
func stackAt(mounts []mountEntry, path string) []mountEntry {
	var out []mountEntry
	for _, m := range mounts {
		if m.MountPoint == path {
			out = append(out, m)
		}
	}
	return out
}

// pathMounts reads mountinfo and returns the stack on p.
func pathMounts(p string) ([]mountEntry, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, fmt.Errorf("reading /proc/self/mountinfo: %w", err)
	}
	return stackAt(mounts, resolve(p)), nil
}

// top is the visible mount of a stack, or nil.
func top(stack []mountEntry) *mountEntry {
	if len(stack) == 0 {
		return nil
	}
	return &stack[len(stack)-1]
}

// bindReadOnly bind-mounts source on target and makes the bind read-only
// (two mount(2) calls: a bind takes its flags from the source, a remount
// sets ro), with nosuid and nodev as the FUSE mount has them. The target may
// be a mount point already: the bind then stacks on top of it, which is how
// a restored volume reaches containers whose bind of the old mount is a
// slave of it (see the package comment). On failure nothing is left mounted.
func bindReadOnly(source, target string) error {
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", source, target, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	if err := unix.Mount("", target, "", flags, ""); err != nil {
		uerr := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		return fmt.Errorf("remount the bind on %s read-only: %w (undo: %v)", target, err, uerr)
	}
	return nil
}

// maxLayers bounds the unmounts of one unmountHoard: more layers of hoard
// mounts than this on one path means something keeps mounting there.
const maxLayers = 16

// unmountHoard unmounts every hoard mount stacked on path, top first: lazily
// if lazy is set or the mount is busy, so that a Broken mount (ENOTCONN) or
// one a departed pod still holds never fails the call. It stops at the first
// mount that is not hoard's (and says so): what others mounted is not ours
// to remove. A path that does not exist or holds no mount is done.
func unmountHoard(path string, lazy bool) error {
	for range maxLayers {
		stack, err := pathMounts(path)
		if err != nil {
			return err
		}
		t := top(stack)
		if t == nil {
			return nil
		}
		if !t.isHoard() {
			return fmt.Errorf("%s: the mount on it is %s from %q, not hoard's; not unmounting it", path, t.FsType, t.Source)
		}
		err = fusefd.Unmount(path, lazy)
		if err != nil && !lazy {
			err = fusefd.Unmount(path, true)
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("%s: still a hoard mount point after %d unmounts", path, maxLayers)
}

// removeDir removes the directory path if it exists and is empty.
func removeDir(path string) error {
	err := os.Remove(path)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
