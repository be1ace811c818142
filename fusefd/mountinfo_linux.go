package fusefd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// MountInfo is one line of /proc/self/mountinfo (see proc(5)). Callers decide
// what is mounted where from these, never by stat or open on a path: a FUSE
// mount whose server hangs would hang them.
type MountInfo struct {
	ID, Parent int
	// Device is "major:minor": for FUSE, the connection. A bind of a FUSE
	// mount shows the same device as the mount itself.
	Device       string
	Root         string
	MountPoint   string
	Options      string   // per mount: rw/ro, nosuid, nodev, ...
	Optional     []string // shared:N, master:N, ...
	FsType       string
	Source       string
	SuperOptions string // per file system: user_id=, allow_other, ...
}

// IsHoard reports whether m is a hoard FUSE mount (or a bind of one).
func (m MountInfo) IsHoard() bool { return m.FsType == FSType }

// Mounts parses /proc/self/mountinfo, in mount order: of several mounts
// stacked on one point the last is the visible one.
func Mounts() ([]MountInfo, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return ParseMountinfo(b)
}

// ParseMountinfo parses lines of the form
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// (ID, parent ID, device, root, mount point, options, optional fields ended by
// "-", then type, source, super options).
func ParseMountinfo(b []byte) ([]MountInfo, error) {
	var out []MountInfo
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
		out = append(out, MountInfo{
			ID: id, Parent: parent, Device: f[2],
			Root:         unescapeMountinfo(f[3]),
			MountPoint:   unescapeMountinfo(f[4]),
			Options:      f[5],
			Optional:     f[6:sep],
			FsType:       unescapeMountinfo(f[sep+1]),
			Source:       unescapeMountinfo(f[sep+2]),
			SuperOptions: strings.Join(f[sep+3:], " "),
		})
	}
	return out, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for space, \011,
// \012, \134 for backslash) in a mountinfo field.
func unescapeMountinfo(s string) string {
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

// topMount returns the visible mount on path, or nil.
func topMount(mounts []MountInfo, path string) *MountInfo {
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].MountPoint == path {
			return &mounts[i]
		}
	}
	return nil
}

// maxSymlinks bounds the links locate follows, as the kernel's MAXSYMLINKS.
const maxSymlinks = 40

// Resolve returns the path the kernel shows in mountinfo for target, given
// the mount table mounts: absolute, with symbolic links resolved, those of
// its directories and, unless target is a mount point itself, its own (up
// to 40, as the kernel's MAXSYMLINKS), as mount(2) would resolve it. It
// looks a candidate up in mounts before it lstats it, and never stats
// through a mount point, so it does not hang on a mount whose server does
// not answer nor fail on a Broken one. This is the one resolver of paths for
// fusefd, node and their tests.
//
// On error (a missing directory or file, a loop) it returns the path as far
// as it was resolved, with an error wrapping fs.ErrNotExist when something
// is missing: a caller about to create the path can use that path.
func Resolve(target string, mounts []MountInfo) (string, error) {
	if target == "" {
		return "", errors.New("empty path")
	}
	path, err := filepath.Abs(target)
	if err != nil {
		return filepath.Clean(target), err
	}
	for range maxSymlinks {
		if path != "/" {
			dir, err := filepath.EvalSymlinks(filepath.Dir(path))
			if err != nil {
				return path, err
			}
			path = filepath.Join(dir, filepath.Base(path))
		}
		if topMount(mounts, path) != nil {
			return path, nil
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return path, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return path, nil
		}
		dest, err := os.Readlink(path)
		if err != nil {
			return path, err
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(path), dest)
		}
		path = filepath.Clean(dest)
	}
	return path, &fs.PathError{Op: "resolve", Path: target, Err: syscall.ELOOP}
}

// locate resolves target (Resolve, on the current mountinfo) and returns
// the visible mount on it, or nil. A missing target or parent gives an
// error wrapping fs.ErrNotExist.
func locate(target string) (string, *MountInfo, error) {
	mounts, err := Mounts()
	if err != nil {
		return "", nil, err
	}
	path, err := Resolve(target, mounts)
	if err != nil {
		return path, nil, err
	}
	return path, topMount(mounts, path), nil
}
