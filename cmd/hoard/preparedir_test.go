package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func owner(t *testing.T, p string) (int, int) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// TestPrepareDir: a new directory and an existing tree (a link in it
// included, changed itself and never followed) go to the owner, mode 0700.
func TestPrepareDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: chown needs root")
	}
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.WriteFile(outside, nil, 0o644)
	dir := filepath.Join(base, "cache")
	os.MkdirAll(filepath.Join(dir, "pages"), 0o755)
	os.WriteFile(filepath.Join(dir, "pages", "p1"), []byte("x"), 0o600)
	os.Symlink(outside, filepath.Join(dir, "link"))
	fresh := filepath.Join(base, "new", "coordinator")
	for _, d := range []string{dir, fresh} {
		if err := prepareDir(d, 65532, 65532); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v", d, fi.Mode())
		}
	}
	for _, p := range []string{dir, filepath.Join(dir, "pages", "p1"), filepath.Join(dir, "link"), fresh} {
		if u, g := owner(t, p); u != 65532 || g != 65532 {
			t.Errorf("%s owned by %d:%d", p, u, g)
		}
	}
	if u, _ := owner(t, outside); u != 0 {
		t.Errorf("the link's target was given away (%d)", u)
	}
}

func TestPrepareDirRefuses(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	for _, tc := range []struct{ dir, want string }{
		{"relative/dir", "absolute"},
		{f, "not a directory"},
	} {
		if err := prepareDir(tc.dir, 65532, 65532); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("prepareDir(%s): %v, want %q", tc.dir, err, tc.want)
		}
	}
	for _, s := range []string{"65532", "a:b", "1:-1", ""} {
		if _, _, err := parseOwner(s); err == nil {
			t.Errorf("parseOwner(%q) accepted", s)
		}
	}
}

func TestCoordinatorFlags(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*coordinatorFlags)
		want string
	}{
		{func(f *coordinatorFlags) { f.state = "joining" }, "--initial-cluster-state"},
		{func(f *coordinatorFlags) { f.quota = 1 << 20 }, "--quota"},
		{func(f *coordinatorFlags) { f.cfg.Name = "" }, "--name"},
	} {
		f := &coordinatorFlags{state: "new", quota: 512 << 20}
		f.cfg.Name, f.cfg.Dir = "m0", t.TempDir()
		tc.mod(f)
		if _, err := f.config(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error naming %s", err, tc.want)
		}
	}
	f := &coordinatorFlags{state: "existing", quota: 512 << 20}
	f.cfg.Name, f.cfg.Dir = "m0", filepath.Join(t.TempDir(), "etcd")
	cfg, err := f.config()
	if err != nil || !cfg.Existing || cfg.QuotaBytes != 512<<20 {
		t.Fatalf("%+v %v", cfg, err)
	}
	if fi, err := os.Stat(cfg.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v %v", fi, err)
	}
}
