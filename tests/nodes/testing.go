package nodes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"hoard.dev/hoard/tests/testenv"
)

// Available says why nodes cannot be made here, or nil: root, the commands
// it runs, network namespaces, cgroup v1.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("not running as root")
	}
	for _, c := range []string{"ip", "tc", "nsenter", "unshare", "sysctl"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s not found (Debian: iproute2, util-linux, procps)", c)
		}
	}
	if len(cgroupHierarchies()) == 0 {
		return errors.New("no cgroup v1 hierarchy under /sys/fs/cgroup")
	}
	return nil
}

// ForTest makes a cluster of the named nodes for the length of the test and
// destroys it at the end. Without root or the tools it skips the test (fails
// it with HOARD_REQUIRE_ALL=1). cfg.StateDir defaults to a temp dir.
func ForTest(t testing.TB, cfg Config, names ...string) *Cluster {
	t.Helper()
	testenv.RequireOrSkip(t, "network namespaces (root, iproute2, cgroup v1)", Available())
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Create(ctx, cfg, names...)
	if err != nil {
		t.Fatalf("nodes: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := c.Destroy(ctx); err != nil {
			t.Errorf("nodes: destroy: %v", err)
		}
	})
	return c
}

// Proc is a process a test started in a node with Start.
type Proc struct {
	Node *Node
	Log  string // its stdout and stderr
	cmd  *exec.Cmd
	done chan struct{}

	mu struct {
		sync.Mutex
		err error
	}
}

// Start starts name in node n with its output in <node dir>/logs/<logName>.log
// and kills it when the test ends (if Kill did not end the node's processes
// before).
func Start(t testing.TB, n *Node, logName, name string, arg ...string) *Proc {
	t.Helper()
	return StartCommand(t, n, logName, n.Command(context.Background(), name, arg...))
}

// StartCommand is Start for a command made with n.Command and then set up
// by the caller (its Env, say). Its Stdout and Stderr are the log.
func StartCommand(t testing.TB, n *Node, logName string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p, err := n.start(logName, cmd)
	if err != nil {
		t.Fatalf("nodes: start %s in %s: %v", cmd.Args, n.Name, err)
	}
	t.Cleanup(func() { p.Stop() })
	return p
}

// Start starts cmd (made with n.Command) with its output in <node
// dir>/logs/<logName>.log, like StartCommand, but leaves stopping it to
// the caller: for a process that must outlive the (sub)test that starts
// it, such as a server restarted by a subtest of the test that owns it.
func (n *Node) Start(logName string, cmd *exec.Cmd) (*Proc, error) {
	return n.start(logName, cmd)
}

func (n *Node) start(logName string, cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Node: n, Log: filepath.Join(n.Dir, "logs", logName+".log"), done: make(chan struct{})}
	if err := os.MkdirAll(filepath.Dir(p.Log), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p.cmd = cmd
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.mu.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's pid (the command's own: sh and nsenter exec it).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is how the process ended (nil while it runs).
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.err
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop kills the process (SIGKILL) and waits until it is reaped.
func (p *Proc) Stop() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// Logs returns what the process wrote so far.
func (p *Proc) Logs() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}
