package nodes

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const cgroupRoot = "/sys/fs/cgroup"

// run runs a command (bounded to 30 s) and returns its output in the error
// if it fails.
func run(ctx context.Context, name string, arg ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, arg...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(arg, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func execCommand(name string, arg ...string) *exec.Cmd { return exec.Command(name, arg...) }

// alive: pid exists and is not a zombie (kill -0 succeeds on zombies).
func alive(pid int) bool {
	st, err := procStat(pid)
	if err != nil || len(st) < 1 {
		return false
	}
	return st[0] != "Z" && st[0] != "X"
}

// startTime is field 22 of /proc/pid/stat: when the process started.
func startTime(pid int) (uint64, error) {
	st, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	if len(st) < 20 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return strconv.ParseUint(st[19], 10, 64)
}

// procStat returns the fields of /proc/pid/stat after the command name
// (state first).
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// inode of a path (a namespace file compares by it).
func inode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// cgroupHierarchies returns the mounted cgroup v1 hierarchies
// (/sys/fs/cgroup/cpu, /sys/fs/cgroup/memory, ...), one path each.
func cgroupHierarchies() []string {
	entries, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(cgroupRoot, e.Name())
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() { // cpu,cpuacct links to the real mount
			continue
		}
		var fs unix.Statfs_t
		if unix.Statfs(p, &fs) != nil || fs.Type != unix.CGROUP_SUPER_MAGIC {
			continue
		}
		out = append(out, p)
	}
	return out
}

// makeCgroup makes cg in every v1 hierarchy; in cpuset, with its parent's
// CPUs and memory nodes (a cpuset without them takes no process).
func makeCgroup(cg string) error {
	for _, h := range cgroupHierarchies() {
		p := filepath.Join(h, cg)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", p, err)
		}
		if filepath.Base(h) != "cpuset" {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			v, err := os.ReadFile(filepath.Join(filepath.Dir(p), f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(p, f), v, 0o644); err != nil {
				return fmt.Errorf("cgroup %s: %s: %w", p, f, err)
			}
		}
	}
	return nil
}

// removeCgroup removes cg and the cgroups under it (a kubelet makes many)
// in every hierarchy. It fails if a process is still in one.
func removeCgroup(cg string) error {
	var errs []error
	for _, h := range cgroupHierarchies() {
		root := filepath.Join(h, cg)
		if _, err := os.Stat(root); err != nil {
			continue
		}
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // children first
		for _, d := range dirs {
			var err error
			for i := 0; i < 20; i++ { // a cgroup empties a moment after its last process dies
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// inCgroup: pid is in cg or under it in some v1 hierarchy.
func inCgroup(pid int, cg string) bool {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) == 3 && parts[1] != "" && (parts[2] == cg || strings.HasPrefix(parts[2], cg+"/")) {
			return true
		}
	}
	return false
}

// mountsUnder lists the mount points at or below dir in this mount namespace.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
