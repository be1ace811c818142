package fusefd

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The cross-process tests re-execute the test binary in a role: TestMain runs
// the role instead of the tests when envRole is set.
const (
	envRole   = "FUSEFD_TEST_ROLE"
	envSock   = "FUSEFD_TEST_SOCK"
	envTarget = "FUSEFD_TEST_TARGET"
	envSrc    = "FUSEFD_TEST_SRC"

	roleServer  = "server"
	roleMounter = "mounter"

	testFsName = "hoard:s3://test-bucket/prefix"

	// waitLong bounds every wait on another process or on a FUSE access.
	waitLong = 30 * time.Second
)

func TestMain(m *testing.M) {
	switch role := os.Getenv(envRole); role {
	case "":
		os.Exit(m.Run())
	case roleServer:
		os.Exit(runRole(role, serverMain))
	case roleMounter:
		os.Exit(runRole(role, mounterMain))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", envRole, role)
		os.Exit(2)
	}
}

func runRole(role string, main func() error) int {
	// A child must not outlive its test: the parent holds our stdin open and
	// closes it (or dies) when we should go; a watchdog bounds the rest.
	time.AfterFunc(2*waitLong, func() {
		fmt.Fprintf(os.Stderr, "%s: watchdog expired\n", role)
		os.Exit(3)
	})
	if err := main(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		return 1
	}
	return 0
}

// volumeMeta is what the mounter sends to the server next to the descriptor.
type volumeMeta struct {
	Volume string `json:"volume"`
	Target string `json:"target"`
	Src    string `json:"src"` // what the test server serves (a loopback of a directory)
}

// serverMain is the long-lived per-node mounter of production: unprivileged
// in spirit, it receives a /dev/fuse descriptor and serves it until the mount
// goes away.
func serverMain() error {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: os.Getenv(envSock), Net: "unix"})
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() { // parent gone or done with us
		io.Copy(io.Discard, os.Stdin)
		os.Exit(4)
	}()
	fmt.Println("ready")

	if err := ln.SetDeadline(time.Now().Add(waitLong)); err != nil {
		return err
	}
	conn, err := ln.AcceptUnix()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(waitLong)); err != nil {
		return err
	}
	f, metaJSON, err := Receive(conn)
	if err != nil {
		return err
	}
	var meta volumeMeta
	if err := json.Unmarshal(metaJSON, &meta); err != nil {
		f.Close()
		return fmt.Errorf("metadata %q: %w", metaJSON, err)
	}
	p, err := ServePath(f)
	if err != nil {
		return err
	}
	root, err := fs.NewLoopbackRoot(meta.Src)
	if err != nil {
		return err
	}
	srv, err := fs.Mount(p, root, &fs.Options{MountOptions: fuse.MountOptions{MaxWrite: 1 << 20}})
	if err != nil {
		return fmt.Errorf("serve %s: %w", p, err)
	}
	if _, err := conn.Write([]byte("ok\n")); err != nil {
		return err
	}
	fmt.Printf("serving %s for %s\n", meta.Target, meta.Volume)
	srv.Wait() // until the mount is unmounted
	fmt.Println("unmounted")
	return nil
}

// mounterMain is the privileged CSI node plugin of production: it mounts,
// hands the descriptor over, and goes away.
func mounterMain() error {
	target := os.Getenv(envTarget)
	f, err := Mount(target, Options{FsName: testFsName})
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		f.Close()
		if !ok { // never leave a mount nobody serves
			Unmount(target, true)
		}
	}()
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: os.Getenv(envSock), Net: "unix"})
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(waitLong)); err != nil {
		return err
	}
	meta, err := json.Marshal(volumeMeta{Volume: "vol-1", Target: target, Src: os.Getenv(envSrc)})
	if err != nil {
		return err
	}
	if err := Send(conn, f, meta); err != nil {
		return err
	}
	ack, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("waiting for the server's ack: %w", err)
	}
	if ack != "ok\n" {
		return fmt.Errorf("server answered %q", ack)
	}
	ok = true
	fmt.Println("mounted")
	// Hold our copy of the descriptor until the parent says go (closes stdin).
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// child is a re-executed test binary in a role.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string   // stdout, line by line; closed at EOF
	done  chan struct{} // closed when the process has been waited for
	err   error         // exit status, valid after done
	mu    sync.Mutex
	errb  bytes.Buffer
}

func startChild(t *testing.T, role string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envRole+"="+role), env...)
	c := &child{name: role, cmd: cmd, lines: make(chan string, 16), done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{mu: &c.mu, w: &c.errb}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", role, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.kill()
		select {
		case <-c.done:
		case <-time.After(waitLong):
			t.Errorf("%s (pid %d) not reaped", role, cmd.Process.Pid)
		}
	})
	return c
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (c *child) stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errb.String()
}

func (c *child) kill() { c.cmd.Process.Signal(syscall.SIGKILL) }

// expectLine waits for the next stdout line and checks its prefix.
func (c *child) expectLine(t *testing.T, prefix string) {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			<-c.done
			t.Fatalf("%s exited (%v) before printing %q; stderr:\n%s", c.name, c.err, prefix, c.stderr())
		}
		if !strings.HasPrefix(l, prefix) {
			t.Fatalf("%s printed %q, want %q...; stderr:\n%s", c.name, l, prefix, c.stderr())
		}
	case <-time.After(waitLong):
		t.Fatalf("%s: no %q within %v; stderr:\n%s", c.name, prefix, waitLong, c.stderr())
	}
}

// wait waits for the child to exit and returns its status.
func (c *child) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(waitLong):
		t.Fatalf("%s did not exit within %v; stderr:\n%s", c.name, waitLong, c.stderr())
		return nil
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for mount(2) and /dev/fuse")
	}
}

// cleanupMount lazily unmounts target at the end of the test, whatever state
// it is in. Register it before starting the processes that serve target: they
// are killed first (cleanups run last in, first out).
func cleanupMount(t *testing.T, target string) {
	t.Cleanup(func() {
		if err := Unmount(target, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// writeRandom writes n random bytes to path and returns them.
func writeRandom(t *testing.T, path string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// testTree fills a directory with the files the serving tests read back.
func testTree(t *testing.T) (dir string, files map[string][]byte) {
	dir = t.TempDir()
	files = map[string][]byte{
		"big.bin":         writeRandom(t, filepath.Join(dir, "big.bin"), 3<<20+12345),
		"sub/small.bin":   writeRandom(t, filepath.Join(dir, "sub/small.bin"), 4097),
		"sub/deeper/zero": writeRandom(t, filepath.Join(dir, "sub/deeper/zero"), 0),
	}
	return dir, files
}

// readFileSys reads path with plain syscalls (no runtime poller, so it is safe
// in the process that serves the mount too), bounded by waitLong.
func readFileSys(path string) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{nil, &os.PathError{Op: "open", Path: path, Err: err}}
			return
		}
		defer unix.Close(fd)
		var out []byte
		buf := make([]byte, 256<<10)
		for {
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				ch <- result{nil, &os.PathError{Op: "read", Path: path, Err: err}}
				return
			}
			if n == 0 {
				ch <- result{out, nil}
				return
			}
			out = append(out, buf[:n]...)
		}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-time.After(waitLong):
		return nil, fmt.Errorf("read %s: no answer within %v", path, waitLong)
	}
}

// checkFiles reads every file through the mount on dir, byte-exact.
func checkFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, want := range files {
		got, err := readFileSys(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s through the mount: %d bytes differ from the %d written", name, len(got), len(want))
		}
	}
}

// mountOf returns the visible mountinfo entry on path.
func mountOf(t *testing.T, path string) *MountInfo {
	t.Helper()
	_, m, err := locate(path)
	if err != nil {
		t.Fatal(err)
	}
	if m == nil {
		t.Fatalf("%s: not a mount point", path)
	}
	return m
}

func wantState(t *testing.T, path string, want State) {
	t.Helper()
	got, err := Check(path)
	if err != nil {
		t.Fatalf("Check(%s): %v", path, err)
	}
	if got != want {
		t.Fatalf("Check(%s) = %v, want %v", path, got, want)
	}
}

// socketPair returns the two ends of a connected Unix socket of type typ.
func socketPair(t *testing.T, typ int) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // the directory being read
}
