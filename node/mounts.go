package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"hoard.dev/hoard/fusefd"
)

// mountEntry is one line of /proc/self/mountinfo: every decision about a
// path is made from these, never by stat or open on the path.
type mountEntry = fusefd.MountInfo

// resolve returns the path the kernel shows in mountinfo for p, given the
// mount table (fusefd.Resolve, the one resolver). A path that does not
// exist (yet) resolves as far as it can.
func resolve(p string, mounts []mountEntry) string {
	r, _ := fusefd.Resolve(p, mounts)
	if r == "" {
		return filepath.Clean(p)
	}
	return r
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
func (s *Server) pathMounts(p string) ([]mountEntry, error) {
	mounts, err := s.mounts.List()
	if err != nil {
		return nil, fmt.Errorf("reading /proc/self/mountinfo: %w", err)
	}
	return stackAt(mounts, resolve(p, mounts)), nil
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
func (s *Server) unmountHoard(path string, lazy bool) error {
	for range maxLayers {
		stack, err := s.pathMounts(path)
		if err != nil {
			return err
		}
		t := top(stack)
		if t == nil {
			return nil
		}
		if !t.IsHoard() {
			return fmt.Errorf("%s: the mount on it is %s from %q, not hoard's; not unmounting it", path, t.FsType, t.Source)
		}
		err = s.mounts.Unmount(path, lazy)
		if err != nil && !lazy {
			err = s.mounts.Unmount(path, true)
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
