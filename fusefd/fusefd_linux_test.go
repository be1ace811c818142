package fusefd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// TestServeInProcess mounts with Mount and serves the descriptor with go-fuse
// in the same process through ServePath's /dev/fd/N.
func TestServeInProcess(t *testing.T) {
	requireRoot(t)
	src, files := testTree(t)
	target := t.TempDir()
	cleanupMount(t, target)

	f, err := Mount(target, Options{FsName: testFsName})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ServePath(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p, "/dev/fd/") {
		t.Fatalf("ServePath = %q", p)
	}
	root, err := gofs.NewLoopbackRoot(src)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gofs.Mount(p, root, &gofs.Options{MountOptions: fuse.MountOptions{MaxWrite: 1 << 20}})
	if err != nil {
		t.Fatalf("fs.Mount(%s): %v", p, err)
	}
	served := make(chan struct{})
	go func() { srv.Wait(); close(served) }()

	m := mountOf(t, target)
	if m.FsType != FSType || m.Source != testFsName {
		t.Errorf("mountinfo: type %q source %q, want %q %q", m.FsType, m.Source, FSType, testFsName)
	}
	wantState(t, target, Healthy)
	checkFiles(t, target, files)

	if err := Unmount(target, false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-served:
	case <-time.After(waitLong):
		t.Fatal("go-fuse still serving after Unmount")
	}
	wantState(t, target, NotMounted)
}

// startVolume runs the production shape: a server process listening on a
// Unix socket, and a short-lived privileged mounter process that mounts target,
// sends the descriptor and then waits for the test's word to exit.
func startVolume(t *testing.T) (target string, files map[string][]byte, server, mounter *child) {
	t.Helper()
	src, files := testTree(t)
	target = t.TempDir()
	sock := filepath.Join(t.TempDir(), "mounter.sock")
	cleanupMount(t, target)

	server = startChild(t, roleServer, envSock+"="+sock)
	server.expectLine(t, "ready")
	mounter = startChild(t, roleMounter, envSock+"="+sock, envTarget+"="+target, envSrc+"="+src)
	mounter.expectLine(t, "mounted")
	server.expectLine(t, "serving "+target+" for vol-1")
	return target, files, server, mounter
}

// TestAcrossProcesses: the descriptor goes mounter → server over SCM_RIGHTS,
// and the mount outlives the process that made it.
func TestAcrossProcesses(t *testing.T) {
	requireRoot(t)
	target, files, server, mounter := startVolume(t)

	m := mountOf(t, target)
	if m.FsType != FSType || m.Source != testFsName {
		t.Errorf("mountinfo: type %q source %q, want %q %q", m.FsType, m.Source, FSType, testFsName)
	}
	wantState(t, target, Healthy)
	checkFiles(t, target, files)

	// The mounting process goes away (a CSI plugin restart).
	mounter.stdin.Close()
	if err := mounter.wait(t); err != nil {
		t.Fatalf("mounter: %v; stderr:\n%s", err, mounter.stderr())
	}
	if err := syscall.Kill(mounter.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("mounter still exists: kill(0) = %v", err)
	}
	wantState(t, target, Healthy)
	checkFiles(t, target, files)

	// A normal unstage: unmount, and the server's go-fuse loop ends cleanly.
	if err := Unmount(target, false); err != nil {
		t.Fatal(err)
	}
	server.expectLine(t, "unmounted")
	if err := server.wait(t); err != nil {
		t.Fatalf("server after unmount: %v; stderr:\n%s", err, server.stderr())
	}
	wantState(t, target, NotMounted)
}

// TestServerKilled: a dead server leaves a Broken mount (ENOTCONN) once no
// process holds the descriptor; a lazy Unmount cleans it up, and again is a
// no-op.
func TestServerKilled(t *testing.T) {
	requireRoot(t)
	target, files, server, mounter := startVolume(t)
	checkFiles(t, target, files)

	server.kill()
	if err := server.wait(t); err == nil {
		t.Fatal("server exited cleanly after SIGKILL")
	}

	// The mounter still holds a copy of the descriptor: the connection lives
	// on with nobody reading it, and accesses hang instead of failing. This is
	// why the sender must close its copy.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	st, err := CheckContext(ctx, target)
	cancel()
	if st != Unknown || !errors.Is(err, ErrNotResponding) {
		t.Fatalf("with the mounter's copy open: Check = %v, %v; want Unknown, ErrNotResponding", st, err)
	}

	mounter.stdin.Close()
	if err := mounter.wait(t); err != nil {
		t.Fatalf("mounter: %v; stderr:\n%s", err, mounter.stderr())
	}
	wantState(t, target, Broken)
	if _, err := os.Stat(target); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("stat of a broken mount: %v, want ENOTCONN", err)
	}
	if _, err := Mount(target, Options{}); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("Mount on a broken mount: %v, want EBUSY", err)
	}

	if err := Unmount(target, true); err != nil {
		t.Fatal(err)
	}
	wantState(t, target, NotMounted)
	for _, lazy := range []bool{true, false} {
		if err := Unmount(target, lazy); err != nil {
			t.Fatalf("Unmount(lazy=%v) again: %v", lazy, err)
		}
	}
}

// TestCheckNotResponding: a mount whose descriptor nobody serves blocks every
// access (FUSE_INIT unanswered); Check says so in bounded time, and the mount
// turns Broken when the last copy of the descriptor is closed.
func TestCheckNotResponding(t *testing.T) {
	requireRoot(t)
	target := t.TempDir()
	cleanupMount(t, target)
	f, err := Mount(target, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	for range 2 { // the second call joins the first call's stuck probe
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		st, err := CheckContext(ctx, target)
		cancel()
		if st != Unknown || !errors.Is(err, ErrNotResponding) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Check of an unserved mount = %v, %v; want Unknown, ErrNotResponding", st, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Check took %v", d)
		}
	}
	probes.mu.Lock()
	n := len(probes.byPath)
	probes.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d probes in flight, want 1", n)
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	wantState(t, target, Broken)
	if err := Unmount(target, false); err != nil { // non-lazy works on a broken mount too
		t.Fatal(err)
	}
	wantState(t, target, NotMounted)
}

// TestMountOptions checks what the kernel made of Options, in mountinfo.
func TestMountOptions(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name        string
		o           Options
		wantSource  string
		wantMount   []string // per-mount options
		wantSuper   []string // file system options
		unwantSuper []string
	}{
		{
			name:        "default",
			o:           Options{},
			wantSource:  DefaultFsName,
			wantMount:   []string{"rw", "nosuid", "nodev"},
			wantSuper:   []string{"user_id=0", "group_id=0"},
			unwantSuper: []string{"allow_other", "default_permissions"},
		},
		{
			name:       "all",
			o:          Options{FsName: "hoard:s3://b/with space,comma", ReadOnly: true, AllowOther: true, DefaultPermissions: true, UserID: 1000, GroupID: 1001, MaxRead: 128 << 10},
			wantSource: "hoard:s3://b/with space,comma",
			wantMount:  []string{"ro", "nosuid", "nodev"},
			wantSuper:  []string{"user_id=1000", "group_id=1001", "allow_other", "default_permissions", "max_read=131072"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := t.TempDir()
			cleanupMount(t, target)
			f, err := Mount(target, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			f.Close() // unserved: Broken, and mountinfo is all we look at
			m := mountOf(t, target)
			if m.FsType != FSType || m.Source != tc.wantSource {
				t.Errorf("type %q source %q, want %q %q", m.FsType, m.Source, FSType, tc.wantSource)
			}
			mountOpts := strings.Split(m.Options, ",")
			superOpts := strings.Split(m.SuperOptions, ",")
			for _, o := range tc.wantMount {
				if !contains(mountOpts, o) {
					t.Errorf("mount options %q lack %q", m.Options, o)
				}
			}
			for _, o := range tc.wantSuper {
				if !contains(superOpts, o) {
					t.Errorf("super options %q lack %q", m.SuperOptions, o)
				}
			}
			for _, o := range tc.unwantSuper {
				if contains(superOpts, o) {
					t.Errorf("super options %q have %q", m.SuperOptions, o)
				}
			}
			if err := Unmount(target, false); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func TestMountErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	busy := filepath.Join(dir, "busy")
	if err := os.Mkdir(busy, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := unix.Mount("tmpfs", busy, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { Unmount(busy, true) })
	}
	for _, tc := range []struct {
		name, target string
		o            Options
		root         bool
		want         error
		wantText     string
	}{
		{name: "missing", target: filepath.Join(dir, "missing"), want: fs.ErrNotExist, wantText: "does not exist"},
		{name: "missing parent", target: filepath.Join(dir, "missing/sub"), want: fs.ErrNotExist, wantText: "does not exist"},
		{name: "file", target: file, want: unix.ENOTDIR, wantText: "not a directory"},
		{name: "under a file", target: filepath.Join(file, "sub"), want: unix.ENOTDIR, wantText: "not a directory"},
		{name: "empty", target: "", wantText: "empty path"},
		{name: "NUL in FsName", target: dir, o: Options{FsName: "a\x00b"}, wantText: "NUL"},
		{name: "long FsName", target: dir, o: Options{FsName: strings.Repeat("x", maxFsNameLen+1)}, wantText: "more than 4095"},
		{name: "already mounted", target: busy, root: true, want: unix.EBUSY, wantText: "already a mount point (tmpfs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				requireRoot(t)
			}
			f, err := Mount(tc.target, tc.o)
			if err == nil {
				f.Close()
				Unmount(tc.target, true)
				t.Fatal("Mount succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v does not wrap %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantText) || !strings.Contains(err.Error(), tc.target) {
				t.Errorf("error %q does not say %q and name the target", err, tc.wantText)
			}
		})
	}
}

func TestUnmountNotMounted(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, file, filepath.Join(dir, "missing"), filepath.Join(dir, "missing/sub"), filepath.Join(file, "sub")} {
		for _, lazy := range []bool{false, true} {
			if err := Unmount(p, lazy); err != nil {
				t.Errorf("Unmount(%s, %v) = %v, want nil", p, lazy, err)
			}
		}
		wantState(t, p, NotMounted)
	}
}

// TestSymlinkTarget: a target given through a symbolic link is found in
// mountinfo under its real path.
func TestSymlinkTarget(t *testing.T) {
	requireRoot(t)
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	cleanupMount(t, real)
	f, err := Mount(link, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	wantState(t, link, Broken)
	if err := Unmount(link, false); err != nil {
		t.Fatal(err)
	}
	wantState(t, real, NotMounted)
}

func TestSendReceive(t *testing.T) {
	requireRoot(t) // /dev/fuse is root's
	for _, typ := range []struct {
		name string
		typ  int
	}{{"stream", unix.SOCK_STREAM}, {"seqpacket", unix.SOCK_SEQPACKET}} {
		t.Run(typ.name, func(t *testing.T) {
			a, b := socketPair(t, typ.typ)
			dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Close()
			for _, meta := range [][]byte{nil, []byte(`{"volume":"v"}`), make([]byte, MaxMetaSize)} {
				before := openFDs(t)
				if err := Send(a, dev, meta); err != nil {
					t.Fatal(err)
				}
				b.SetDeadline(time.Now().Add(waitLong))
				f, got, err := Receive(b)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(meta) {
					t.Fatalf("meta: got %d bytes, sent %d", len(got), len(meta))
				}
				flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
				if err != nil || flags&unix.FD_CLOEXEC == 0 {
					t.Fatalf("received descriptor flags %#x, %v: want FD_CLOEXEC", flags, err)
				}
				if err := checkFuseDev(int(f.Fd())); err != nil {
					t.Fatal(err)
				}
				f.Close()
				if n := openFDs(t); n != before {
					t.Fatalf("%d descriptors open, %d before", n, before)
				}
			}
			if err := Send(a, dev, make([]byte, MaxMetaSize+1)); err == nil || !strings.Contains(err.Error(), "more than") {
				t.Fatalf("Send of oversized metadata: %v", err)
			}
		})
	}
}

// TestReceiveErrors: every malformed message is refused, and every descriptor
// it carried is closed.
func TestReceiveErrors(t *testing.T) {
	frame := func(magic string, size uint32, meta []byte) []byte {
		b := make([]byte, headerSize, headerSize+len(meta))
		copy(b, magic)
		binary.BigEndian.PutUint32(b[4:], size)
		return append(b, meta...)
	}
	pipe := func(t *testing.T) *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		return r
	}
	good := frame(frameMagic, 2, []byte("{}"))
	for _, tc := range []struct {
		name  string
		typ   int
		send  func(t *testing.T, c *unixConn)
		want  string
		isErr error
	}{
		{name: "no descriptor", typ: unix.SOCK_STREAM, want: "no file descriptor",
			send: func(t *testing.T, c *unixConn) { c.write(t, good) }},
		{name: "no descriptor seqpacket", typ: unix.SOCK_SEQPACKET, want: "no file descriptor",
			send: func(t *testing.T, c *unixConn) { c.write(t, good) }},
		{name: "not /dev/fuse", typ: unix.SOCK_STREAM, want: "not /dev/fuse",
			send: func(t *testing.T, c *unixConn) { c.writeFDs(t, good, pipe(t)) }},
		{name: "two descriptors", typ: unix.SOCK_STREAM, want: "2 file descriptors",
			send: func(t *testing.T, c *unixConn) { c.writeFDs(t, good, pipe(t), pipe(t)) }},
		{name: "two descriptors seqpacket", typ: unix.SOCK_SEQPACKET, want: "2 file descriptors",
			send: func(t *testing.T, c *unixConn) { c.writeFDs(t, good, pipe(t), pipe(t)) }},
		{name: "too many descriptors", typ: unix.SOCK_STREAM, want: "truncated",
			send: func(t *testing.T, c *unixConn) {
				var fs []*os.File
				for range maxRecvFDs + 4 {
					fs = append(fs, pipe(t))
				}
				c.writeFDs(t, good, fs...)
			}},
		{name: "bad magic", typ: unix.SOCK_STREAM, want: "bad magic",
			send: func(t *testing.T, c *unixConn) { c.writeFDs(t, frame("HTTP", 2, []byte("{}")), pipe(t)) }},
		{name: "oversized metadata", typ: unix.SOCK_STREAM, want: "more than",
			send: func(t *testing.T, c *unixConn) { c.writeFDs(t, frame(frameMagic, MaxMetaSize+1, nil), pipe(t)) }},
		{name: "length mismatch seqpacket", typ: unix.SOCK_SEQPACKET, want: "header says",
			send: func(t *testing.T, c *unixConn) { c.writeFDs(t, frame(frameMagic, 5, []byte("{}")), pipe(t)) }},
		{name: "truncated stream", typ: unix.SOCK_STREAM, isErr: io.ErrUnexpectedEOF,
			send: func(t *testing.T, c *unixConn) {
				c.writeFDs(t, frame(frameMagic, 10, []byte("{}")), pipe(t))
				c.Close()
			}},
		{name: "closed", typ: unix.SOCK_STREAM, isErr: io.EOF,
			send: func(t *testing.T, c *unixConn) { c.Close() }},
		{name: "closed seqpacket", typ: unix.SOCK_SEQPACKET, isErr: io.EOF,
			send: func(t *testing.T, c *unixConn) { c.Close() }},
		{name: "deadline", typ: unix.SOCK_STREAM, isErr: os.ErrDeadlineExceeded,
			send: func(t *testing.T, c *unixConn) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := socketPair(t, tc.typ)
			tc.send(t, &unixConn{a})
			before := openFDs(t)
			b.SetDeadline(time.Now().Add(200 * time.Millisecond))
			f, meta, err := Receive(b)
			if err == nil {
				f.Close()
				t.Fatalf("Receive succeeded with %q", meta)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.isErr != nil && !errors.Is(err, tc.isErr) {
				t.Errorf("error %v is not %v", err, tc.isErr)
			}
			if n := openFDs(t); n != before {
				t.Errorf("%d descriptors open after the failed Receive, %d before: leaked", n, before)
			}
		})
	}
}

type unixConn struct{ *net.UnixConn }

func (c *unixConn) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func (c *unixConn) writeFDs(t *testing.T, b []byte, files ...*os.File) {
	t.Helper()
	var fds []int
	for _, f := range files {
		fds = append(fds, int(f.Fd()))
	}
	if _, _, err := c.WriteMsgUnix(b, unix.UnixRights(fds...), nil); err != nil {
		t.Fatal(err)
	}
}

func TestServePath(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p, err := ServePath(r)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(p, "/dev/fd/%d", &n); err != nil || n < minServeFD {
		t.Fatalf("ServePath = %q", p)
	}
	defer unix.Close(n)
	if _, err := r.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("ServePath left its argument open: %v", err)
	}
	flags, err := unix.FcntlInt(uintptr(n), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("fd %d flags %#x, %v: want FD_CLOEXEC", n, flags, err)
	}
	fl, err := unix.FcntlInt(uintptr(n), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Fatalf("fd %d status flags %#x, %v: want blocking", n, fl, err)
	}
}

func TestParseMountinfo(t *testing.T) {
	in := "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n" +
		`600 29 0:77 / /var/lib/kubelet/a\040b\134c rw,nosuid,nodev,relatime shared:300 - fuse.hoard hoard:s3://bkt/p\040q rw,user_id=0,group_id=0` + "\n" +
		"601 29 0:78 / /x rw - tmpfs tmpfs rw\n"
	got, err := ParseMountinfo([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []MountInfo{
		{ID: 36, Parent: 35, Device: "98:0", Root: "/mnt1", MountPoint: "/mnt2", Options: "rw,noatime",
			Optional: []string{"master:1"}, FsType: "ext3", Source: "/dev/root", SuperOptions: "rw,errors=continue"},
		{ID: 600, Parent: 29, Device: "0:77", Root: "/", MountPoint: `/var/lib/kubelet/a b\c`, Options: "rw,nosuid,nodev,relatime",
			Optional: []string{"shared:300"}, FsType: "fuse.hoard", Source: "hoard:s3://bkt/p q", SuperOptions: "rw,user_id=0,group_id=0"},
		{ID: 601, Parent: 29, Device: "0:78", Root: "/", MountPoint: "/x", Options: "rw",
			Optional: []string{}, FsType: "tmpfs", Source: "tmpfs", SuperOptions: "rw"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if !got[1].IsHoard() || got[0].IsHoard() {
		t.Error("IsHoard wrong")
	}
	if _, err := ParseMountinfo([]byte("1 2 3 4\n")); err == nil {
		t.Error("malformed line accepted")
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Unknown: "Unknown", NotMounted: "NotMounted", Healthy: "Healthy", Broken: "Broken", State(42): "Unknown"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(s), s, want)
		}
	}
}
