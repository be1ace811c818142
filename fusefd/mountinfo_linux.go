package fusefd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// mountEntry is the part of one /proc/self/mountinfo line that fusefd uses.
type mountEntry struct {
	mountPoint   string
	options      string // per mount: rw/ro, nosuid, nodev, ...
	fsType       string
	source       string
	superOptions string // per file system: user_id=, allow_other, ...
}

// readMountinfo parses /proc/self/mountinfo (see proc(5)): in mount order, so
// of several mounts stacked on one point the last is the visible one.
func readMountinfo() ([]mountEntry, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMountinfo(b)
}

// parseMountinfo parses lines of the form
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// (ID, parent ID, device, root, mount point, options, optional fields ended by
// "-", then type, source, super options).
func parseMountinfo(b []byte) ([]mountEntry, error) {
	var out []mountEntry
	for line := range bytes.Lines(b) {
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			continue
		}
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			return nil, fmt.Errorf("malformed mountinfo line %q", bytes.TrimSpace(line))
		}
		out = append(out, mountEntry{
			mountPoint:   unescapeMountinfo(fields[4]),
			options:      fields[5],
			fsType:       unescapeMountinfo(fields[sep+1]),
			source:       unescapeMountinfo(fields[sep+2]),
			superOptions: strings.Join(fields[sep+3:], " "),
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
func topMount(mounts []mountEntry, path string) *mountEntry {
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].mountPoint == path {
			return &mounts[i]
		}
	}
	return nil
}

// maxSymlinks bounds the links locate follows, as the kernel's MAXSYMLINKS.
const maxSymlinks = 40

// locate resolves target to the path the kernel shows in mountinfo (absolute,
// symbolic links resolved) and returns the visible mount on it, or nil. It
// looks a candidate up in mountinfo before it lstats it, and never stats
// through a mount point, so it does not hang on a mount whose server does not
// answer nor fail on a Broken one. A missing target or parent gives an error
// wrapping fs.ErrNotExist.
func locate(target string) (string, *mountEntry, error) {
	if target == "" {
		return "", nil, errors.New("empty path")
	}
	path, err := filepath.Abs(target)
	if err != nil {
		return "", nil, err
	}
	mounts, err := readMountinfo()
	if err != nil {
		return "", nil, err
	}
	for range maxSymlinks {
		if path != "/" {
			dir, err := filepath.EvalSymlinks(filepath.Dir(path))
			if err != nil {
				return "", nil, err
			}
			path = filepath.Join(dir, filepath.Base(path))
		}
		if m := topMount(mounts, path); m != nil {
			return path, m, nil
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return path, nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return path, nil, nil
		}
		dest, err := os.Readlink(path)
		if err != nil {
			return path, nil, err
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(path), dest)
		}
		path = filepath.Clean(dest)
	}
	return "", nil, &fs.PathError{Op: "resolve", Path: target, Err: syscall.ELOOP}
}
