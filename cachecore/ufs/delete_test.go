package ufs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/tests/testenv"
)

// deleter is a backend that can delete.
type deleter interface {
	ufs.UFS
	ufs.Deleter
}

// allKeys lists every key in the bucket.
func allKeys(t *testing.T, u ufs.UFS) []string {
	t.Helper()
	var keys []string
	for _, p := range listAll(t, u, ufs.ListOptions{}) {
		for _, o := range p.Objects {
			keys = append(keys, o.Key)
		}
	}
	return keys
}

// testDeletePrefix checks DeletePrefix on any backend: exactly the keys under
// the prefix go, siblings that share its name as a string prefix stay, and a
// second call finds nothing to do.
func testDeletePrefix(t *testing.T, d deleter, f fixture, extra []string) {
	vol := []string{"v/vol-a/x", "v/vol-a/sub/y", "v/vol-a/sub/deeper/z"}
	// 1500 more keys: the deletion needs two listing pages.
	for i := range 1500 {
		vol = append(vol, fmt.Sprintf("v/vol-a/many/k%04d", i))
	}
	keep := []string{"v/vol-a-other/x", "v/vol-ab", "v/vol-a.txt", "v/vol-b/x", "other/vol-a/x", "vol-a/x", "w"}
	putMany(t, f, append(slices.Clone(vol), keep...))
	for _, k := range extra {
		f.mustPut(t, k, nil)
	}

	// Refused prefixes delete nothing.
	for _, bad := range []string{"", "/", "v/vol-a", "v", "v//", "v/../", "./", "v/./vol-a/", "/v/vol-a/"} {
		n, err := d.DeletePrefix(ctxT(t), bad)
		if !errors.Is(err, ufs.ErrInvalidKey) || n != 0 {
			t.Errorf("DeletePrefix(%q) = %d, %v; want 0, ErrInvalidKey", bad, n, err)
		}
	}
	if got := len(allKeys(t, d)); got != len(vol)+len(keep)+len(extra) {
		t.Fatalf("after refused deletions %d keys are left, want %d", got, len(vol)+len(keep)+len(extra))
	}

	n, err := d.DeletePrefix(ctxT(t), "v/vol-a/")
	if err != nil {
		t.Fatalf("DeletePrefix(v/vol-a/): %v", err)
	}
	if want := int64(len(vol) + len(extra)); n != want {
		t.Errorf("DeletePrefix(v/vol-a/) deleted %d objects, want %d", n, want)
	}
	got := allKeys(t, d)
	want := slices.Sorted(slices.Values(keep))
	if !slices.Equal(got, want) {
		t.Errorf("after DeletePrefix(v/vol-a/) the bucket holds %q, want %q", got, want)
	}

	// Idempotent: nothing left to delete is not an error.
	if n, err := d.DeletePrefix(ctxT(t), "v/vol-a/"); err != nil || n != 0 {
		t.Errorf("second DeletePrefix(v/vol-a/) = %d, %v; want 0, nil", n, err)
	}
	if n, err := d.DeletePrefix(ctxT(t), "never/was/"); err != nil || n != 0 {
		t.Errorf("DeletePrefix of an empty prefix = %d, %v; want 0, nil", n, err)
	}

	// A cancelled context stops before deleting anything more.
	putMany(t, f, []string{"c/1", "c/2"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.DeletePrefix(ctx, "c/"); !errors.Is(err, context.Canceled) {
		t.Errorf("DeletePrefix with a cancelled context: %v, want context.Canceled", err)
	}
	if got := allKeys(t, d); !slices.Contains(got, "c/1") || !slices.Contains(got, "c/2") {
		t.Errorf("DeletePrefix with a cancelled context deleted objects: %q left", got)
	}
}

func TestS3DeletePrefix(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "data")
	s := newS3(t, "data", m.S3Config())
	fix := fixture{u: s, put: func(key string, data []byte) error {
		m.Put(t, "data", key, data)
		return nil
	}}
	// A directory marker is an object under the prefix too.
	testDeletePrefix(t, s, fix, []string{"v/vol-a/"})

	_, err := newS3(t, "nobucket", m.S3Config()).DeletePrefix(ctxT(t), "v/")
	if !errors.Is(err, ufs.ErrNoSuchBucket) {
		t.Errorf("DeletePrefix in a missing bucket: %v, want ErrNoSuchBucket", err)
	}
	wrong := m.S3Config()
	wrong.SecretKey = "wrong-secret-Zq8uP"
	m.Put(t, "data", "w2/x", nil)
	_, err = newS3(t, "data", wrong).DeletePrefix(ctxT(t), "w2/")
	if !errors.Is(err, ufs.ErrAccessDenied) || strings.Contains(err.Error(), wrong.SecretKey) {
		t.Errorf("DeletePrefix with a wrong secret: %v, want ErrAccessDenied without the secret", err)
	}
}

func TestLocalDeletePrefix(t *testing.T) {
	dir := t.TempDir()
	l := newLocal(t, dir)
	testDeletePrefix(t, l, fixture{u: l, put: func(key string, data []byte) error { return writeFile(dir, key, data) }}, nil)

	// The directory itself is gone, empty subdirectories included.
	if err := os.MkdirAll(filepath.Join(dir, "e", "empty", "dirs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if n, err := l.DeletePrefix(ctxT(t), "e/"); err != nil || n != 0 {
		t.Errorf("DeletePrefix(e/) of empty directories = %d, %v", n, err)
	}
	for _, p := range []string{"v/vol-a", "e"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after its deletion: %v", p, err)
		}
	}

	// A symlinked directory on the way: deleting through it would delete
	// the files of the directory it points to.
	if err := writeFile(dir, "real/f", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DeletePrefix(ctxT(t), "link/"); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("DeletePrefix through a symlinked directory: %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "real", "f")); err != nil {
		t.Errorf("the symlink's target lost its file: %v", err)
	}
	// A prefix that names a file deletes nothing.
	if n, err := l.DeletePrefix(ctxT(t), "real/f/"); err != nil || n != 0 {
		t.Errorf("DeletePrefix(real/f/) = %d, %v; want 0, nil", n, err)
	}
}
