package fuse_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hoard.dev/hoard/fusefd"
	"hoard.dev/hoard/tests/testenv"
)

// TestFileSourceKeepsOwnerAndMode: `hoard mount file://` run as root shows
// each file with its owner and permission bits in the source (without write
// bits), and the kernel enforces them: a 0600 file is not shown to every
// user as 0444, and another user cannot read it.
func TestFileSourceKeepsOwnerAndMode(t *testing.T) {
	testenv.RequireFUSE(t)
	const nobody = 65534
	src := openDir(t)
	for _, f := range []struct {
		name     string
		uid, gid int
		mode     os.FileMode
	}{{"secret.txt", 0, 0, 0o600}, {"team.txt", 1000, nobody, 0o640}, {"public.txt", 0, 0, 0o644}} {
		p := filepath.Join(src, f.name)
		if err := os.WriteFile(p, []byte(f.name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, f.uid, f.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	// A readable file in a directory only its owner may search: others
	// cannot reach it in the source, so not through the mount either.
	if err := os.Mkdir(filepath.Join(src, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "private", "open.txt"), []byte("private/open.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := openDir(t)
	cmd := exec.Command(testenv.HoardBinary(t), "mount", "file://"+src, mnt, "--cache-dir", t.TempDir(), "--log-level", "warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fusefd.Unmount(mnt, true)
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	testenv.WaitFor(t, 10*time.Second, "the mount", func() bool {
		st, err := fusefd.Check(mnt)
		return err == nil && st == fusefd.Healthy
	})

	for name, want := range map[string]struct {
		uid, gid uint32
		mode     uint32
	}{"secret.txt": {0, 0, 0o400}, "team.txt": {1000, nobody, 0o440}, "public.txt": {0, 0, 0o444},
		"private/open.txt": {0, 0, 0o400}} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(mnt, name), &st); err != nil {
			t.Fatalf("stat %s: %v\n%s", name, err, logs.String())
		}
		if st.Uid != want.uid || st.Gid != want.gid || st.Mode&0o7777 != want.mode {
			t.Errorf("%s: owner %d:%d mode %04o, want %d:%d %04o", name, st.Uid, st.Gid, st.Mode&0o7777, want.uid, want.gid, want.mode)
		}
	}
	// As another user: the kernel applies those modes.
	for name, readable := range map[string]bool{"secret.txt": false, "team.txt": true, "public.txt": true,
		"private/open.txt": false} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cat := exec.CommandContext(ctx, "cat", filepath.Join(mnt, name))
		cat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cat.CombinedOutput()
		cancel()
		switch {
		case readable && (err != nil || string(out) != name):
			t.Errorf("%s as nobody: %q, %v; want its content", name, out, err)
		case !readable && (err == nil || !strings.Contains(string(out), "Permission denied")):
			var ee *exec.ExitError
			t.Errorf("%s as nobody: %q, %v (exit error %t); want permission denied", name, out, err, errors.As(err, &ee))
		}
	}
}

// openDir is a temporary directory every user may traverse.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hoard-owner-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
