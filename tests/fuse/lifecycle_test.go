package fuse_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/fuseview"
	"hoard.dev/hoard/fuseview/fuseviewtest"
	"hoard.dev/hoard/tests/testenv"
)

// openModes are the two ways files open: without a round trip (the kernel's
// no-open support, the default where the kernel has it) and with OPEN and
// RELEASE sent to hoard.
var openModes = []struct {
	name string
	mo   fuseview.MountOptions
}{{"no-open", fuseview.MountOptions{}}, {"kernel-opens", fuseview.MountOptions{KernelOpens: true}}}

// TestMetadataTTL overwrites an object: once MetadataTTL has passed, stat
// shows the new size and reads return the new bytes.
func TestMetadataTTL(t *testing.T) {
	for i, m := range openModes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t)
			v1, v2 := testenv.RandomBytes(100_000, uint64(10*i+1)), testenv.RandomBytes(250_000, uint64(10*i+2))
			e.put(t, "k.bin", v1)
			dir, _ := e.mountWith(t, "", fuseview.Options{MetadataTTL: time.Second, NegativeTTL: time.Second}, m.mo)
			p := filepath.Join(dir, "k.bin")
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, v1) {
				t.Fatalf("first read: %d bytes, %v", len(got), err)
			}
			e.put(t, "k.bin", v2)
			e.put(t, "new.txt", []byte("new"))
			start := time.Now()
			testenv.WaitFor(t, 5*time.Second, "stat shows the new size", func() bool {
				fi, err := os.Stat(p)
				return err == nil && fi.Size() == int64(len(v2))
			})
			t.Logf("new size seen after %s", time.Since(start).Round(time.Millisecond))
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, v2) {
				t.Fatalf("read after the TTL: %d bytes (want %d), same bytes: %t, %v", len(got), len(v2), bytes.Equal(got, v2), err)
			}
			testenv.WaitFor(t, 5*time.Second, "a new object shows in the listing", func() bool {
				ents, err := os.ReadDir(dir)
				return err == nil && len(ents) == 2
			})
		})
	}
}

// TestOverwriteWhileOpen reads a file that is overwritten while open: the
// read of a part not cached yet fails with EIO, and the next open reads the
// new version, without waiting for the TTL.
func TestOverwriteWhileOpen(t *testing.T) {
	for i, m := range openModes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t)
			v1, v2 := testenv.RandomBytes(8*MiB, uint64(10*i+3)), testenv.RandomBytes(9*MiB+5, uint64(10*i+4))
			e.put(t, "w.bin", v1)
			dir, root := e.mountWith(t, "", fuseview.Options{}, m.mo)
			p := filepath.Join(dir, "w.bin")
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := checkReadAt(f, v1, 0, 4096); err != nil {
				t.Fatal(err)
			}
			e.put(t, "w.bin", v2)
			_, err = f.ReadAt(make([]byte, 4096), 6*MiB)
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("read of an uncached part after the overwrite: %v, want EIO", err)
			}
			if got := root.Stats().Errors.Load(); got == 0 {
				t.Error("the failed read was not counted")
			}
			f.Close()
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, v2) {
				t.Fatalf("next open: %d bytes (want %d), same bytes: %t, %v", len(got), len(v2), bytes.Equal(got, v2), err)
			}
			opens := root.Stats().Opens.Load()
			switch {
			case m.mo.KernelOpens && opens != 2:
				t.Errorf("%d opens reached hoard, want 2", opens)
			case !m.mo.KernelOpens && root.NoOpen() && opens != 0:
				t.Errorf("%d opens reached hoard, want none (no-open)", opens)
			case !m.mo.KernelOpens && !root.NoOpen():
				t.Logf("this kernel has no FUSE no-open support: %d opens reached hoard", opens)
			}
		})
	}
}

// TestClosesCostNoRoundTrip opens, reads and closes files many times: the
// first close's FLUSH is answered ENOSYS, and the kernel sends no other
// (each one was a round trip per close, even with no-open).
func TestClosesCostNoRoundTrip(t *testing.T) {
	for i, m := range openModes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t)
			data := testenv.RandomBytes(10_000, uint64(10*i+7))
			for j := range 4 {
				e.put(t, fmt.Sprintf("f%d", j), data)
			}
			dir, root := e.mountWith(t, "", fuseview.Options{}, m.mo)
			for j := range 20 {
				got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%d", j%4)))
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read %d: %d bytes, %v", j, len(got), err)
				}
			}
			if n := root.Stats().Flushes.Load(); n != 1 {
				t.Errorf("20 closes sent %d FLUSH requests, want 1 (answered ENOSYS, then none)", n)
			}
		})
	}
}

// TestUnmountWithOpenFile unmounts while a reader holds a file open: the
// mount is detached at once and the server stops when the file is closed;
// or, if the caller's context ends first, the connection is aborted.
func TestUnmountWithOpenFile(t *testing.T) {
	e := newEnv(t)
	data := testenv.RandomBytes(3*MiB, 5)
	e.put(t, "open.bin", data)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := e.cache.Open(ctx, ufs.Location{Scheme: "s3", Bucket: e.bucket}, e.s3)
	if err != nil {
		t.Fatal(err)
	}

	mount := func(t *testing.T) (string, *os.File, func(context.Context) error) {
		root, err := fuseview.NewRoot(u, "", e.cache, fuseview.Options{})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		srv, err := fuseview.Mount(dir, root, fuseview.MountOptions{})
		if err != nil {
			t.Fatal(err)
		}
		unmount := func(ctx context.Context) error { return fuseview.Unmount(ctx, srv, dir) }
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			unmount(ctx) // no-op if the test unmounted
		})
		f, err := os.Open(filepath.Join(dir, "open.bin"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if err := checkReadAt(f, data, 0, MiB); err != nil {
			t.Fatal(err)
		}
		return dir, f, unmount
	}

	t.Run("lazy", func(t *testing.T) {
		dir, f, unmount := mount(t)
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done <- unmount(ctx)
		}()
		testenv.WaitFor(t, 5*time.Second, "the mount leaves the namespace", func() bool { return !mounted(t, dir) })
		// The open file still reads, from the detached mount.
		testenv.Within(t, 10*time.Second, "read the open file", func() error { return checkReadAt(f, data, MiB, 2*MiB) })
		select {
		case err := <-done:
			t.Fatalf("Unmount returned (%v) while a file was open", err)
		default:
		}
		f.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("unmount: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the server did not stop within 10s of the last close")
		}
	})

	t.Run("abort", func(t *testing.T) {
		_, f, unmount := mount(t)
		testenv.Within(t, 15*time.Second, "unmount with a 1s deadline", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := unmount(ctx); !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("got %v, want the deadline's error after an abort", err)
			}
			return nil
		})
		testenv.Within(t, 5*time.Second, "read after the abort", func() error {
			if _, err := f.ReadAt(make([]byte, 100), 2*MiB); !errors.Is(err, syscall.ENOTCONN) {
				return fmt.Errorf("got %v, want ENOTCONN", err)
			}
			return nil
		})
	})
}

// TestUnmountWithCopyInAnotherNamespace: a mount namespace made while the
// mount exists (as other tests' node namespaces and ip netns exec make them,
// with slave propagation) holds a copy of it; unmounting here removes the
// copy too and the server stops at once. Where the parent mount is private
// the copy would keep the FUSE connection, and the server, until that
// namespace ends: the tests' temporary directories lie below a shared mount
// (TestMain) so that it is not.
func TestUnmountWithCopyInAnotherNamespace(t *testing.T) {
	_, err := exec.LookPath("unshare")
	testenv.RequireOrSkip(t, "unshare (util-linux)", err)
	e := newEnv(t)
	e.put(t, "x.txt", []byte("x"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := e.cache.Open(ctx, ufs.Location{Scheme: "s3", Bucket: e.bucket}, e.s3)
	if err != nil {
		t.Fatal(err)
	}
	root, err := fuseview.NewRoot(u, "", e.cache, fuseview.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := fuseview.Mount(dir, root, fuseview.MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		fuseview.Unmount(ctx, srv, dir) // no-op if the test unmounted
	})
	if b, err := os.ReadFile(filepath.Join(dir, "x.txt")); err != nil || string(b) != "x" {
		t.Fatalf("read through the mount: %q, %v", b, err)
	}

	// The shell says when it runs in the new namespace.
	ns := exec.Command("unshare", "--mount", "--propagation", "slave", "sh", "-c", "echo ready; exec sleep 60")
	out, err := ns.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Process.Kill(); ns.Wait() })
	testenv.Within(t, 10*time.Second, "the new namespace", func() error {
		line, err := bufio.NewReader(out).ReadString('\n')
		if line != "ready\n" {
			return fmt.Errorf("unshare said %q, %v", line, err)
		}
		return nil
	})
	copied := func() bool {
		mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", ns.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return mountedIn(string(mi), dir)
	}
	if !copied() {
		t.Fatal("the new namespace has no copy of the mount")
	}

	testenv.Within(t, 15*time.Second, "unmount", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return fuseview.Unmount(ctx, srv, dir)
	})
	if copied() {
		t.Error("the copy in the other namespace outlived the unmount")
	}
}

// mounted tells whether dir is a mount point of this mount namespace.
func mounted(t *testing.T, dir string) bool {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return mountedIn(string(mi), dir)
}

// mountedIn tells whether dir is a mount point in mountinfo.
func mountedIn(mountinfo, dir string) bool {
	for l := range strings.Lines(mountinfo) {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// TestMountDevFd mounts the way a privileged parent hands a mount to an
// unprivileged server: the test opens /dev/fuse and mounts it itself, and
// fuseview serves "/dev/fd/N".
func TestMountDevFd(t *testing.T) {
	e := newEnv(t)
	e.put(t, "x.txt", []byte("served over a passed fd"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := e.cache.Open(ctx, ufs.Location{Scheme: "s3", Bucket: e.bucket}, e.s3)
	if err != nil {
		t.Fatal(err)
	}
	root, err := fuseview.NewRoot(u, "", e.cache, fuseview.Options{})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions,max_read=%d", fd, MiB)
	if err := unix.Mount("hoard-parent", dir, "fuse.hoard", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_RDONLY, data); err != nil {
		unix.Close(fd)
		t.Fatalf("mount(2): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) }) // if anything below fails
	srv, err := fuseview.Mount(fmt.Sprintf("/dev/fd/%d", fd), root, fuseview.MountOptions{})
	if err != nil {
		unix.Close(fd)
		t.Fatalf("serve /dev/fd/%d: %v", fd, err)
	}
	// Before this process opens a file there (see fuseview.DisablePoll).
	testenv.Within(t, 10*time.Second, "disable poll", func() error { return fuseview.DisablePoll(dir) })
	testenv.Within(t, 10*time.Second, "read through the passed fd", func() error {
		b, err := os.ReadFile(filepath.Join(dir, "x.txt"))
		if err != nil || string(b) != "served over a passed fd" {
			return fmt.Errorf("read x.txt: %q, %v", b, err)
		}
		return nil
	})
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fuseview.Unmount(ctx, srv, dir); err != nil {
		t.Fatalf("unmount: %v", err)
	}
}

// TestErrors maps the bucket's failures to errnos: access denied is EACCES,
// another failure of a read is EIO, and a read that the bucket stalls fails
// with EIO after OpTimeout instead of hanging.
func TestErrors(t *testing.T) {
	e := newEnv(t)
	b := fuseviewtest.NewBucket("mem://errors")
	e.cache.Sources.Add(b)
	e.cache.Embedded.Sources.Add(b)
	for _, k := range []string{"private/denied.txt", "broken.bin", "slow.bin"} {
		b.Put(k, testenv.RandomBytes(3*MiB, 6))
	}
	dir, root := mountTree(t, b, "", e.cache, fuseview.Options{OpTimeout: 500 * time.Millisecond}, fuseview.MountOptions{})
	p := func(s string) string { return filepath.Join(dir, s) }
	// Look everything up first: later failures hit reads only.
	for _, k := range []string{"broken.bin", "slow.bin"} {
		if _, err := os.Stat(p(k)); err != nil {
			t.Fatal(err)
		}
	}

	// Not listed yet (nothing looked into private/), so asked for with HEAD.
	b.Fail("private/denied.txt", fmt.Errorf("stat: %w", ufs.ErrAccessDenied))
	if _, err := os.Stat(p("private/denied.txt")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("stat of a denied key: %v, want EACCES", err)
	}

	b.Fail("broken.bin", errors.New("connection reset by peer"))
	if _, err := os.ReadFile(p("broken.bin")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read of a failing key: %v, want EIO", err)
	}

	release := b.Stall("slow.bin")
	defer release()
	start := time.Now()
	testenv.Within(t, 10*time.Second, "read of a stalled key", func() error {
		if _, err := os.ReadFile(p("slow.bin")); !errors.Is(err, syscall.EIO) {
			return fmt.Errorf("got %v, want EIO", err)
		}
		return nil
	})
	t.Logf("stalled read failed after %s (OpTimeout 500ms)", time.Since(start).Round(time.Millisecond))
	if root.Stats().Errors.Load() < 2 {
		t.Errorf("errors counted: %d, want at least 2", root.Stats().Errors.Load())
	}
}
