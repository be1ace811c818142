package nodes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hoard.dev/hoard/tests/testenv"
)

// The test binary doubles as the program run inside nodes:
// HOARD_NODES_HELPER=serve:ADDR answers each connection with "hello <ADDR>";
// HOARD_NODES_HELPER=dial:ADDR prints the answer and the time it took.
func TestMain(m *testing.M) {
	if h := os.Getenv("HOARD_NODES_HELPER"); h != "" {
		os.Exit(helper(h))
	}
	os.Exit(m.Run())
}

func helper(spec string) int {
	mode, addr, _ := strings.Cut(spec, ":")
	switch mode {
	case "serve":
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("listening")
		for {
			c, err := l.Accept()
			if err != nil {
				return 1
			}
			fmt.Fprintf(c, "hello %s\n", addr)
			c.Close()
		}
	case "bulk":
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("listening")
		buf := make([]byte, bulkSize)
		for {
			c, err := l.Accept()
			if err != nil {
				return 1
			}
			c.Write(buf)
			c.Close()
		}
	case "fetch":
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(8 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if err != nil || n != bulkSize {
			fmt.Println("error:", n, err)
			return 1
		}
		fmt.Printf("fetched %d\n", time.Since(start).Milliseconds())
		return 0
	case "dial":
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Printf("%s %d\n", strings.TrimSpace(line), time.Since(start).Milliseconds())
		return 0
	}
	return 2
}

const bulkSize = 256 << 10

const bindPath = "/run/hoard-nodes-test"

func testConfig() Config {
	return Config{Prefix: "hnt", Subnet: "10.95.0.0/24", Binds: []Bind{{Path: bindPath, Shared: true}}}
}

// inNode runs the test binary's helper in node n and returns its output.
func inNode(t *testing.T, n *Node, spec string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := n.Command(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "HOARD_NODES_HELPER="+spec)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func startServer(t *testing.T, n *Node, addr string) *Proc {
	return startHelper(t, n, "serve:"+addr)
}

func startHelper(t *testing.T, n *Node, spec string) *Proc {
	t.Helper()
	cmd := n.Command(context.Background(), os.Args[0])
	cmd.Env = append(os.Environ(), "HOARD_NODES_HELPER="+spec)
	logName := strings.ReplaceAll(spec, ":", "-")
	before, _ := os.ReadFile(filepath.Join(n.Dir, "logs", logName+".log")) // a restart appends
	p := StartCommand(t, n, logName, cmd)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.Logs(), "listening") <= strings.Count(string(before), "listening") {
		if time.Now().After(deadline) {
			t.Fatalf("server in %s did not start: %s", n.Name, p.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

func TestNodes(t *testing.T) {
	c := ForTest(t, testConfig(), "a", "b")
	a, b := c.Node("a"), c.Node("b")
	if a.IP != "10.95.0.11" || b.IP != "10.95.0.12" || c.HostIP() != "10.95.0.1" {
		t.Fatalf("addresses: host %s, a %s, b %s; want 10.95.0.1, .11, .12", c.HostIP(), a.IP, b.IP)
	}
	addr := b.IP + ":7001"
	srv := startServer(t, b, addr)

	t.Run("network", func(t *testing.T) {
		out, err := inNode(t, a, "dial:"+addr)
		if err != nil || !strings.HasPrefix(out, "hello "+addr) {
			t.Fatalf("a -> b: %q, %v", out, err)
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second) // host -> b over the bridge
		if err != nil {
			t.Fatalf("host -> b: %v", err)
		}
		conn.Close()
		if out, err := inNode(t, a, "dial:127.0.0.1:7001"); err == nil {
			t.Fatalf("b's port is open on a's loopback: %q", out)
		}
	})

	t.Run("minio on the bridge", func(t *testing.T) {
		m := testenv.StartMinIOOn(t, c.HostIP())
		out, err := a.Command(context.Background(), "curl", "-sf", "--max-time", "5",
			m.URL()+"/minio/health/live", "-o", "/dev/null", "-w", "%{http_code}").CombinedOutput()
		if err != nil || string(out) != "200" {
			t.Fatalf("node a -> MinIO on %s: %q, %v", m.Endpoint(), out, err)
		}
	})

	t.Run("mounts", func(t *testing.T) {
		for _, n := range []*Node{a, b} {
			err := n.Command(context.Background(), "sh", "-c", "echo "+n.Name+" > "+bindPath+"/marker").Run()
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range []*Node{a, b} {
			out, err := n.Command(context.Background(), "cat", bindPath+"/marker").Output()
			if err != nil || strings.TrimSpace(string(out)) != n.Name {
				t.Errorf("%s sees %q in its %s (%v), want its own", n.Name, out, bindPath, err)
			}
		}
		if _, err := os.Stat(filepath.Join(bindPath, "marker")); err == nil {
			t.Errorf("a node's file shows on the host's %s", bindPath)
		}
		// Shared: a mount made under it in a node (as a CSI plugin's) reaches
		// the node's other processes, not the host.
		sub := bindPath + "/sub"
		if err := a.Command(context.Background(), "sh", "-c", "mkdir -p "+sub+" && mount -t tmpfs t "+sub+" && touch "+sub+"/f").Run(); err != nil {
			t.Fatal(err)
		}
		if err := a.Command(context.Background(), "test", "-e", sub+"/f").Run(); err != nil {
			t.Errorf("a mount made in node a is not visible to a's next process")
		}
		if len(mountsUnder(bindPath)) > 0 {
			t.Errorf("node a's mounts leaked to the host: %v", mountsUnder(bindPath))
		}
	})

	ms := func(t *testing.T, spec string) int {
		out, err := inNode(t, a, spec)
		var v int
		if _, serr := fmt.Sscanf(out[strings.LastIndexByte(out, ' ')+1:], "%d", &v); err != nil || serr != nil {
			t.Logf("%s: %s", spec, out)
			return -1
		}
		return v
	}
	ctx := context.Background()

	t.Run("rate", func(t *testing.T) {
		startHelper(t, b, "bulk:"+b.IP+":7002")
		// 256 KiB at 2 Mbit/s: about a second.
		if err := b.Impair(ctx, Impairment{Rate: 2_000_000}); err != nil {
			t.Fatal(err)
		}
		if got := ms(t, "fetch:"+b.IP+":7002"); got < 700 {
			t.Errorf("256 KiB over a 2 Mbit/s link in %d ms, want >= 700", got)
		}
		if err := b.Impair(ctx, Impairment{}); err != nil {
			t.Fatal(err)
		}
		if got := ms(t, "fetch:"+b.IP+":7002"); got < 0 || got > 300 {
			t.Errorf("after clearing: %d ms", got)
		}
	})

	t.Run("loss", func(t *testing.T) {
		if err := b.Impair(ctx, Impairment{Loss: 1}); err != nil {
			t.Fatal(err)
		}
		if got := ms(t, "dial:"+addr); got != -1 {
			t.Errorf("a -> b with 100%% loss answered in %d ms", got)
		}
		if err := b.Impair(ctx, Impairment{}); err != nil {
			t.Fatal(err)
		}
		if got := ms(t, "dial:"+addr); got < 0 {
			t.Errorf("a -> b after clearing the loss: no answer")
		}
	})

	t.Run("delay", func(t *testing.T) {
		err := b.Impair(ctx, Impairment{Delay: 100 * time.Millisecond})
		if errors.Is(err, ErrNoNetem) {
			t.Skipf("%v", err)
		}
		defer b.Impair(ctx, Impairment{})
		if err != nil {
			t.Fatal(err)
		}
		// 100 ms each way, twice: connect and answer.
		if got := ms(t, "dial:"+addr); got < 350 {
			t.Errorf("a -> b with 100 ms delay on b: %d ms, want >= 350", got)
		}
	})

	t.Run("link", func(t *testing.T) {
		if err := b.SetLink(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		out, err := inNode(t, a, "dial:"+addr)
		if err == nil || !strings.Contains(out, "timeout") {
			t.Errorf("a -> b with b's link down: %q, %v; want a timeout", out, err)
		}
		if err := b.SetLink(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		if out, err := inNode(t, a, "dial:"+addr); err != nil {
			t.Errorf("a -> b after link up: %q, %v", out, err)
		}
	})

	t.Run("freeze", func(t *testing.T) {
		if err := b.Freeze(true); err != nil {
			t.Fatal(err)
		}
		out, err := inNode(t, a, "dial:"+addr)
		b.Freeze(false)
		if err == nil {
			t.Errorf("a -> frozen b answered: %q", out)
		}
		if out, err := inNode(t, a, "dial:"+addr); err != nil {
			t.Errorf("a -> b after thaw: %q, %v", out, err)
		}
	})

	t.Run("usage", func(t *testing.T) {
		u, err := b.Usage()
		if err != nil || u.CPU <= 0 || u.Processes != 1 || u.RSS <= 0 {
			t.Errorf("b's usage: %+v, %v; want CPU and RSS > 0, 1 process", u, err)
		}
	})

	t.Run("kill and restart", func(t *testing.T) {
		// A process b started that left the namespaces but not the cgroup
		// (as a container does) is b's too.
		escaped := b.Command(context.Background(), "unshare", "--net", "--mount", "sleep", "60")
		if err := escaped.Start(); err != nil {
			t.Fatal(err)
		}
		go escaped.Wait()
		waitFor(t, "2 processes in b", func() bool { p, _ := b.Processes(); return len(p) == 2 })
		n, err := b.Kill(context.Background())
		if err != nil || n != 2 {
			t.Fatalf("Kill: %d processes, %v; want 2", n, err)
		}
		select {
		case <-srv.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the server still runs after Kill")
		}
		if out, err := inNode(t, a, "dial:"+addr); err == nil {
			t.Fatalf("b answers after Kill: %q", out)
		}
		startServer(t, b, addr) // the node comes back: same namespaces, same address
		if out, err := inNode(t, a, "dial:"+addr); err != nil {
			t.Errorf("a -> b after restart: %q, %v", out, err)
		}
	})
}

func TestDestroyLeavesNothing(t *testing.T) {
	testenvSkip(t)
	cfg := testConfig()
	cfg.Prefix, cfg.Subnet, cfg.StateDir = "hnd", "10.96.0.0/28", filepath.Join(t.TempDir(), "state")
	ctx := context.Background()
	c, err := Create(ctx, cfg, "x", "y")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, cfg, "z"); err == nil {
		t.Fatal("a second cluster on the same state dir was made")
	}
	// Another process (the hoard-nodes command) opens it by its state dir.
	o, err := Open(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	y := o.Node("y")
	if y == nil || y.IP != "10.96.0.12" {
		t.Fatalf("Open: node y = %+v", y)
	}
	// A /28 has room for nodes .11 to .14.
	if _, err := o.AddNodes(ctx, "w", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := o.AddNodes(ctx, "u"); err == nil || !strings.Contains(err.Error(), "no room") {
		t.Errorf("a fifth node in a /28: %v, want 'no room'", err)
	}
	p, err := y.start("sleeper", y.Command(ctx, "sleep", "60"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	for _, path := range []string{"/run/netns/hnd-x", "/run/netns/hnd-y", "/sys/class/net/hnd0", "/sys/class/net/hndv1",
		"/sys/fs/cgroup/memory/hnd-x", "/sys/fs/cgroup/cpuset/hnd-y", cfg.StateDir} {
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%s is left after Destroy", path)
		}
	}
	if err := c.Destroy(ctx); err != nil {
		t.Errorf("Destroy again: %v", err)
	}
}

func testenvSkip(t *testing.T) {
	testenv.RequireOrSkip(t, "network namespaces (root, iproute2, cgroup v1)", Available())
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
