package fuse_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sys/unix"

	"hoard.dev/hoard/fuseview"
	"hoard.dev/hoard/fuseview/fuseviewtest"
	"hoard.dev/hoard/tests/testenv"
)

// TestListing lists a prefix of 10,000 objects, nested prefixes, and a mount
// of bucket/prefix.
func TestListing(t *testing.T) {
	e := newEnv(t)
	var keys, many []string
	for i := range 10_000 {
		name := fmt.Sprintf("img-%05d.jpg", i)
		keys = append(keys, "many/"+name)
		many = append(many, name)
	}
	nested := []string{"nest/a/b/c/deep.txt", "nest/a/b/mid.txt", "nest/a/top.txt", "nest/z.txt", "nested-sibling.txt"}
	keys = append(keys, nested...)
	start := time.Now()
	e.putMany(t, keys)
	t.Logf("uploaded %d objects in %s", len(keys), time.Since(start).Round(time.Millisecond))

	dir, root := e.mount(t, "", fuseview.Options{})

	t.Run("10k", func(t *testing.T) {
		lists := e.proxy.Requests("GET", "")
		start := time.Now()
		ents, err := os.ReadDir(filepath.Join(dir, "many"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("os.ReadDir of 10,000 names: %s, %d LIST requests", time.Since(start).Round(time.Millisecond), e.proxy.Requests("GET", "")-lists)
		var got []string
		for _, de := range ents {
			got = append(got, de.Name())
			if !de.Type().IsRegular() {
				t.Errorf("%s: type %v, want a regular file", de.Name(), de.Type())
			}
		}
		if !slices.Equal(got, many) {
			t.Fatalf("got %d names (first %q), want the 10,000 uploaded, each once, sorted", len(got), got[:min(3, len(got))])
		}
		// The names are cached now: stats and reads need no HEAD.
		heads := e.proxy.Requests("HEAD", "many/img-04321.jpg")
		b, err := os.ReadFile(filepath.Join(dir, "many", "img-04321.jpg"))
		if err != nil || !bytes.Equal(b, contentOf("many/img-04321.jpg")) {
			t.Errorf("read img-04321.jpg: %q, %v", b, err)
		}
		if got := e.proxy.Requests("HEAD", "many/img-04321.jpg") - heads; got != 0 {
			t.Errorf("reading a listed file made %d HEAD requests", got)
		}
		// Listing again within the TTL makes no request.
		lists = e.proxy.Requests("GET", "")
		if ents, err := os.ReadDir(filepath.Join(dir, "many")); err != nil || len(ents) != 10_000 {
			t.Errorf("second listing: %d entries, %v", len(ents), err)
		}
		if got := e.proxy.Requests("GET", "") - lists; got != 0 {
			t.Errorf("second listing made %d LIST requests, want 0", got)
		}
	})

	t.Run("nested", func(t *testing.T) {
		var got []string
		err := filepath.WalkDir(filepath.Join(dir, "nest"), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if d.IsDir() {
				rel += "/"
			} else if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, contentOf(rel)) {
				return fmt.Errorf("read %s: %q, %v", rel, b, err)
			}
			got = append(got, rel)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"nest/", "nest/a/", "nest/a/b/", "nest/a/b/c/", "nest/a/b/c/deep.txt", "nest/a/b/mid.txt", "nest/a/top.txt", "nest/z.txt"}
		if !slices.Equal(got, want) {
			t.Errorf("walk: got %q, want %q", got, want)
		}
	})

	t.Run("prefix mount", func(t *testing.T) {
		sub, subRoot := e.mount(t, "nest/a", fuseview.Options{})
		if subRoot.Name() != root.Name()+"/nest/a" {
			t.Errorf("name %q", subRoot.Name())
		}
		ents, err := os.ReadDir(sub)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, de := range ents {
			got = append(got, de.Name())
		}
		if want := []string{"b", "top.txt"}; !slices.Equal(got, want) {
			t.Errorf("bucket/nest/a shows %q, want %q", got, want)
		}
		if b, err := os.ReadFile(filepath.Join(sub, "b", "c", "deep.txt")); err != nil || !bytes.Equal(b, contentOf("nest/a/b/c/deep.txt")) {
			t.Errorf("read b/c/deep.txt: %q, %v", b, err)
		}
		// Nothing outside the prefix is reachable.
		for _, p := range []string{"many", "nest", "z.txt", "../z.txt", "../../nested-sibling.txt"} {
			if _, err := os.Stat(filepath.Join(sub, p)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("stat %s under the prefix mount: %v, want not found", p, err)
			}
		}
	})
}

// TestOddKeys mounts a bucket holding keys that POSIX cannot show (MinIO
// refuses to store most of them, so the bucket is in memory, read through
// the same cache) and checks each rule of fuseview's doc.
func TestOddKeys(t *testing.T) {
	e := newEnv(t)
	b := fuseviewtest.NewBucket("mem://odd")
	e.cache.Sources.Add(b)
	e.cache.Embedded.Sources.Add(b)
	long := strings.Repeat("n", 256)
	for _, k := range []string{
		"ok.txt",
		"both", "both/inner.txt", // file and prefix: the directory wins
		"dots/../escape.txt", "dots/./here.txt", "dots/fine.txt", "escape.txt.not", // ".." and "." segments
		"empty//seg.txt", // empty segment
		long,             // 256-byte name
		"len/" + long[:255],
		"marker/", "marker/inside.txt", // directory marker with content
		"emptydir/", // marker only
		"nul\x00name",
	} {
		b.Put(k, []byte("content of "+k))
	}
	dir, _ := mountTree(t, b, "", e.cache, fuseview.Options{}, fuseview.MountOptions{})

	ls := func(p string) []string {
		t.Helper()
		ents, err := os.ReadDir(filepath.Join(dir, p))
		if err != nil {
			t.Fatalf("readdir %q: %v", p, err)
		}
		var out []string
		for _, de := range ents {
			n := de.Name()
			if de.IsDir() {
				n += "/"
			}
			out = append(out, n)
		}
		return out
	}
	read := func(p string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, p))
		return string(b), err
	}
	check := func(rule string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", rule, got, want)
		}
	}

	check("root", ls(""), []string{"both/", "dots/", "empty/", "emptydir/", "escape.txt.not", "len/", "marker/", "ok.txt"})

	t.Run("file and prefix: the directory wins", func(t *testing.T) {
		check("both/", ls("both"), []string{"inner.txt"})
		if got, err := read("both/inner.txt"); err != nil || got != "content of both/inner.txt" {
			t.Errorf("read both/inner.txt: %q, %v", got, err)
		}
		if _, err := read("both"); !errors.Is(err, syscall.EISDIR) {
			t.Errorf("read both: %v, want EISDIR (the object is hidden)", err)
		}
	})
	t.Run(". and .. segments are hidden and nothing escapes", func(t *testing.T) {
		check("dots/", ls("dots"), []string{"fine.txt"})
		// The kernel resolves dots/.. to the root, where escape.txt does
		// not exist: the key dots/../escape.txt is unreachable.
		if _, err := read("dots/../escape.txt"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("read dots/../escape.txt: %v, want not found", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "dots", "here.txt")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat dots/here.txt (key dots/./here.txt): %v, want not found", err)
		}
	})
	t.Run("empty segment is hidden", func(t *testing.T) {
		check("empty/", ls("empty"), nil)
		if _, err := os.Stat(filepath.Join(dir, "empty", "seg.txt")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat empty/seg.txt (key empty//seg.txt): %v", err)
		}
	})
	t.Run("names over 255 bytes are hidden", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(dir, long)); !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Errorf("stat the 256-byte name: %v, want ENAMETOOLONG", err)
		}
		check("len/", ls("len"), []string{long[:255]})
		if got, err := read("len/" + long[:255]); err != nil || got != "content of len/"+long[:255] {
			t.Errorf("read the 255-byte name: %v", err)
		}
	})
	t.Run("directory markers", func(t *testing.T) {
		check("marker/", ls("marker"), []string{"inside.txt"})
		check("emptydir/", ls("emptydir"), nil)
		for _, p := range []string{"marker", "emptydir"} {
			if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || !fi.IsDir() {
				t.Errorf("stat %s: %v, %v; want a directory", p, fi, err)
			}
		}
	})
}

// TestAttributes checks size, mtime, modes and ENOENT, and that a missing
// name is asked for once while the negative cache holds it.
func TestAttributes(t *testing.T) {
	e := newEnv(t)
	etag := e.put(t, "dir/f.bin", bytes.Repeat([]byte("x"), 12345))
	e.put(t, "neg/present.txt", []byte("x"))
	// The kernel caches nothing, so every stat reaches hoard's own cache.
	dir, _ := e.mount(t, "", fuseview.Options{UID: 1234, GID: 5678, EntryTimeout: -1, AttrTimeout: -1})

	info, err := e.minio.Client().StatObject(context.Background(), e.bucket, "dir/f.bin", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "dir", "f.bin"), &st); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(st.Mtim.Unix())
	switch {
	case st.Size != 12345:
		t.Errorf("size %d, want 12345", st.Size)
	case !mtime.Equal(info.LastModified):
		t.Errorf("mtime %v, want the object's %v", mtime, info.LastModified)
	case st.Mode != unix.S_IFREG|0o444 || st.Uid != 1234 || st.Gid != 5678 || st.Nlink != 1:
		t.Errorf("mode %o uid %d gid %d nlink %d, want %o 1234 5678 1", st.Mode, st.Uid, st.Gid, st.Nlink, unix.S_IFREG|0o444)
	case st.Blksize != 1<<20:
		t.Errorf("blksize %d, want 1 MiB", st.Blksize)
	}
	if err := unix.Stat(filepath.Join(dir, "dir"), &st); err != nil || st.Mode != unix.S_IFDIR|0o555 {
		t.Errorf("dir: mode %o, %v", st.Mode, err)
	}

	// xattr user.hoard.etag is the ETag.
	buf := make([]byte, 128)
	n, err := unix.Getxattr(filepath.Join(dir, "dir", "f.bin"), fuseview.EtagXattr, buf)
	if err != nil || string(buf[:n]) != etag {
		t.Errorf("getxattr %s: %q, %v; want %q", fuseview.EtagXattr, buf[:max(n, 0)], err, etag)
	}
	if n, err := unix.Getxattr(filepath.Join(dir, "dir", "f.bin"), fuseview.EtagXattr, nil); err != nil || n != len(etag) {
		t.Errorf("getxattr size query: %d, %v; want %d", n, err, len(etag))
	}
	n, err = unix.Listxattr(filepath.Join(dir, "dir", "f.bin"), buf)
	if err != nil || string(buf[:n]) != fuseview.EtagXattr+"\x00" {
		t.Errorf("listxattr: %q, %v", buf[:max(n, 0)], err)
	}
	if _, err := unix.Getxattr(filepath.Join(dir, "dir"), fuseview.EtagXattr, buf); !errors.Is(err, unix.ENODATA) {
		t.Errorf("getxattr on a directory: %v, want ENODATA", err)
	}
	// Security labels and ACLs are not supported (ls -l then stops asking
	// for them); other names are simply missing.
	for _, p := range []string{filepath.Join(dir, "dir", "f.bin"), filepath.Join(dir, "dir")} {
		for name, want := range map[string]error{
			"security.selinux": unix.EOPNOTSUPP, "system.posix_acl_access": unix.EOPNOTSUPP,
			"system.posix_acl_default": unix.EOPNOTSUPP, "security.capability": unix.EOPNOTSUPP, "user.other": unix.ENODATA,
		} {
			if _, err := unix.Getxattr(p, name, buf); !errors.Is(err, want) {
				t.Errorf("getxattr %s %s: %v, want %v", p, name, err, want)
			}
		}
	}

	// Missing names: ENOENT, and the second lookup is answered from the
	// negative cache (no second HEAD), though the kernel caches nothing.
	// (neg/ was never listed, so the first lookup in it asks the bucket; a
	// lookup in a listed directory would make no HEAD at all.)
	for i := range 3 {
		if _, err := os.Stat(filepath.Join(dir, "neg", "missing")); !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("stat missing (%d): %v, want ENOENT", i, err)
		}
	}
	if got := e.proxy.Requests("HEAD", "neg/missing"); got != 1 {
		t.Errorf("3 stats of a missing name made %d HEAD requests, want 1", got)
	}
	// Stats of an existing file are answered from the cache too.
	if got := e.proxy.Requests("HEAD", "dir/f.bin"); got > 1 {
		t.Errorf("stats of dir/f.bin made %d HEAD requests, want at most 1", got)
	}
	// statfs: large, 1 MiB blocks.
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil || sfs.Bsize != 1<<20 || sfs.Bavail < 1<<29 || sfs.Namelen != 255 {
		t.Errorf("statfs: bsize %d bavail %d namelen %d, %v", sfs.Bsize, sfs.Bavail, sfs.Namelen, err)
	}
}

// TestReadOnly checks that every change fails with EROFS.
func TestReadOnly(t *testing.T) {
	e := newEnv(t)
	e.put(t, "f.txt", []byte("hello"))
	e.put(t, "d/g.txt", []byte("world"))
	dir, _ := e.mount(t, "", fuseview.Options{})
	p := func(s string) string { return filepath.Join(dir, s) }
	for what, op := range map[string]func() error{
		"create": func() error { return os.WriteFile(p("new.txt"), []byte("x"), 0o644) },
		"open for write": func() error {
			f, err := os.OpenFile(p("f.txt"), os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			return err
		},
		"open O_RDWR": func() error {
			f, err := os.OpenFile(p("f.txt"), os.O_RDWR, 0)
			if err == nil {
				f.Close()
			}
			return err
		},
		"mkdir":    func() error { return os.Mkdir(p("newdir"), 0o755) },
		"unlink":   func() error { return os.Remove(p("f.txt")) },
		"rmdir":    func() error { return unix.Rmdir(p("d")) },
		"rename":   func() error { return os.Rename(p("f.txt"), p("g.txt")) },
		"truncate": func() error { return os.Truncate(p("f.txt"), 0) },
		"chmod":    func() error { return os.Chmod(p("f.txt"), 0o600) },
		"symlink":  func() error { return os.Symlink("f.txt", p("link")) },
		"link":     func() error { return os.Link(p("f.txt"), p("hard")) },
		"setxattr": func() error { return unix.Setxattr(p("f.txt"), "user.x", []byte("y"), 0) },
		"utimes":   func() error { return os.Chtimes(p("f.txt"), time.Now(), time.Now()) },
	} {
		if err := op(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", what, err)
		}
	}
	if b, err := os.ReadFile(p("f.txt")); err != nil || string(b) != "hello" {
		t.Errorf("f.txt after the attempts: %q, %v", b, err)
	}
}

// TestMountOptions checks what the kernel was told, and that cat-sized
// reads reach hoard as 1 MiB requests.
func TestMountOptions(t *testing.T) {
	e := newEnv(t)
	data := testenv.RandomBytes(16*MiB, 9)
	e.put(t, "seq.bin", data)
	dir, root := e.mount(t, "", fuseview.Options{})
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for l := range strings.Lines(string(mi)) {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("%s not in /proc/self/mountinfo", dir)
	}
	for _, want := range []string{" ro,", "nosuid", "nodev", " - fuse.hoard hoard:" + root.Name() + " ", "default_permissions", "allow_other", "max_read=1048576"} {
		if !strings.Contains(line, want) {
			t.Errorf("mountinfo lacks %q: %s", want, line)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	ra, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil || strings.TrimSpace(string(ra)) != "1024" {
		t.Errorf("read_ahead_kb: %q, %v; want 1024", ra, err)
	}
	// 128 KiB reads, as cat makes them: kernel readahead turns them into
	// requests of about 1 MiB (with the kernel's default 128 KiB readahead
	// they stay 128 KiB).
	got, err := readInChunks(filepath.Join(dir, "seq.bin"), 128<<10)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read seq.bin: %d bytes, %v", len(got), err)
	}
	stats := root.Stats()
	if avg := stats.ReadBytes.Load() / max(1, stats.Reads.Load()); avg < 512<<10 {
		t.Errorf("%d read requests of %d KiB on average, want at least 512 KiB", stats.Reads.Load(), avg>>10)
	}
}

// TestRemountListsNothing walks a tree, unmounts, and walks it again on a
// new mount over the same listing dir: the second walk (and a stat of every
// file) reaches the bucket not once.
func TestRemountListsNothing(t *testing.T) {
	e := newEnv(t)
	var keys []string
	for i := range 60 {
		keys = append(keys, fmt.Sprintf("set/c%d/f%02d", i%3, i))
	}
	e.putMany(t, keys)
	opt := fuseview.Options{ListingDir: filepath.Join(t.TempDir(), "listings"), ListingScope: "test"}
	walk := func(dir string) int {
		n := 0
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				_, err = os.Stat(p)
				n++
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Run("first", func(t *testing.T) {
		dir, _ := e.mount(t, "", opt)
		if n := walk(dir); n != len(keys) {
			t.Fatalf("walk found %d files, want %d", n, len(keys))
		}
	})
	before := e.proxy.Total()
	dir, root := e.mount(t, "", opt)
	if n := walk(dir); n != len(keys) {
		t.Fatalf("walk after the remount found %d files, want %d", n, len(keys))
	}
	if got := e.proxy.Total() - before; got != 0 {
		t.Errorf("the walk after the remount made %d requests to the bucket, want 0", got)
	}
	// Each of the 5 directories (/, set/, set/c0-2/) was read back at least
	// once (a walk-ahead and the walk itself may both read one).
	if got := root.Stats().StoredListings.Load(); got < 5 {
		t.Errorf("%d listings read back, want at least 5", got)
	}
}
