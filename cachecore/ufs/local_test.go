package ufs_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/tests/testenv"
)

func newLocal(t *testing.T, dir string) *ufs.Local {
	t.Helper()
	l, err := ufs.NewLocal(dir)
	if err != nil {
		t.Fatalf("NewLocal(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// writeFile writes dir/key, creating directories, the way a user would.
func writeFile(dir, key string, data []byte) error {
	p := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}

func TestLocal(t *testing.T) {
	dir := t.TempDir()
	l := newLocal(t, dir)
	if want := "file://" + dir; l.Source().String() != want {
		t.Errorf("Source() = %q, want %q", l.Source(), want)
	}
	testContract(t, fixture{u: l, put: func(key string, data []byte) error { return writeFile(dir, key, data) }})
}

func TestLocalNoSuchDir(t *testing.T) {
	_, err := ufs.NewLocal(filepath.Join(t.TempDir(), "missing"))
	if !errors.Is(err, ufs.ErrNoSuchBucket) {
		t.Errorf("NewLocal of a missing dir: %v, want ErrNoSuchBucket", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ufs.NewLocal(f); err == nil {
		t.Error("NewLocal of a regular file: no error")
	}
}

// TestLocalEscapes checks that nothing outside the root can be reached, by key
// or through a symlink, and that special files are not objects.
func TestLocalEscapes(t *testing.T) {
	outside := t.TempDir()
	if err := writeFile(outside, "secret", []byte("outside")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, k := range []string{"in/file", "top"} {
		if err := writeFile(dir, k, []byte("inside")); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"out-abs":      filepath.Join(outside, "secret"),
		"out-rel":      "../" + filepath.Base(outside) + "/secret",
		"out-dir":      outside,
		"in/up-top":    "../top",
		"in/up-up":     "../../" + filepath.Base(outside) + "/secret",
		"link-to-file": "in/file",
		"link-to-dir":  "in",
		"dangling":     "nowhere",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLocal(t, dir)

	for _, key := range []string{"../" + filepath.Base(outside) + "/secret", "in/../../x", "/etc/passwd", "", "in//file", "./top", "in/.", "in/file/", "a\x00b"} {
		if _, err := l.Stat(ctxT(t), key); !errors.Is(err, ufs.ErrInvalidKey) {
			t.Errorf("stat %q: %v, want ErrInvalidKey", key, err)
		}
		if _, err := l.ReadRange(ctxT(t), key, "v", 0, 10); !errors.Is(err, ufs.ErrInvalidKey) {
			t.Errorf("read %q: %v, want ErrInvalidKey", key, err)
		}
	}
	for _, prefix := range []string{"../", "in/../../", "/etc/", "/"} {
		if _, err := l.List(ctxT(t), ufs.ListOptions{Prefix: prefix}); !errors.Is(err, ufs.ErrInvalidKey) {
			t.Errorf("list %q: %v, want ErrInvalidKey", prefix, err)
		}
	}
	for _, key := range []string{"out-abs", "out-rel", "out-dir/secret", "in/up-up", "dangling", "fifo", "in", "link-to-dir"} {
		if o, err := l.Stat(ctxT(t), key); !errors.Is(err, ufs.ErrNotFound) {
			t.Errorf("stat %q: %+v, %v; want ErrNotFound", key, o, err)
		}
		rc, err := l.ReadRange(ctxT(t), key, "v", 0, 10)
		if !errors.Is(err, ufs.ErrNotFound) {
			t.Errorf("read %q: %v, want ErrNotFound", key, err)
		}
		if rc != nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			t.Errorf("read %q gave %q", key, b)
		}
	}
	for _, key := range []string{"link-to-file", "in/up-top", "link-to-dir/file"} {
		o, err := l.Stat(ctxT(t), key)
		if err != nil {
			t.Errorf("stat %q (a symlink inside the root): %v", key, err)
			continue
		}
		if got, err := readAll(t, l, key, o.Version, 0, 100); err != nil || string(got) != "inside" {
			t.Errorf("read %q: %q, %v", key, got, err)
		}
	}

	want := map[string][]string{
		"/": {"in/", "link-to-file", "top"},
		"":  {"in/file", "in/up-top", "link-to-file", "top"},
	}
	for delim, w := range want {
		got := entries(listAll(t, l, ufs.ListOptions{Delimiter: delim}))
		if !slices.Equal(got, w) {
			t.Errorf("list delimiter %q: %q, want %q (no escapes, no fifo, no dir symlinks)", delim, got, w)
		}
	}
	if got := entries(listAll(t, l, ufs.ListOptions{Prefix: "out-dir/", Delimiter: "/"})); len(got) != 0 {
		t.Errorf("list through a symlink outside the root: %q", got)
	}
}

// TestLocalChangeDuringRead checks that a file rewritten while a range is read
// fails the read at its end instead of returning a mix of versions.
func TestLocalChangeDuringRead(t *testing.T) {
	dir := t.TempDir()
	data := testenv.RandomBytes(1<<20, 1)
	if err := writeFile(dir, "f", data); err != nil {
		t.Fatal(err)
	}
	l := newLocal(t, dir)
	o, err := l.Stat(ctxT(t), "f")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.ReadRange(ctxT(t), "f", o.Version, 0, o.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dir, "f", data[:len(data)/2]); err != nil { // same inode, truncated
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, ufs.ErrVersionMismatch) {
		t.Errorf("read across a rewrite: %v, want ErrVersionMismatch", err)
	}
}

func TestLocalListOptions(t *testing.T) {
	l := newLocal(t, t.TempDir())
	if _, err := l.List(ctxT(t), ufs.ListOptions{Delimiter: ","}); err == nil || !strings.Contains(err.Error(), "delimiter") {
		t.Errorf("list with delimiter \",\": %v, want an error about the delimiter", err)
	}
}
