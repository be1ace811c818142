package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config describes a cluster of nodes. Two clusters on one machine need
// different prefixes, bridges and subnets.
type Config struct {
	// Prefix names what is made on the host: network namespaces
	// <Prefix>-<node>, host-side veths <Prefix>v<index>, cgroups
	// /<Prefix>-<node>. 1-8 characters, [a-z0-9].
	Prefix string `json:"prefix"`
	// Bridge is the host bridge (default <Prefix>0).
	Bridge string `json:"bridge"`
	// Subnet is the node network, an IPv4 prefix of /16 to /28: the host
	// takes its first address, node i the (10+i)-th.
	Subnet string `json:"subnet"`
	// StateDir holds state.json and each node's directory (<StateDir>/<node>).
	StateDir string `json:"stateDir"`
	// Binds are host paths each node sees as a directory of its own.
	Binds []Bind `json:"binds,omitempty"`
}

// Bind makes Path, in a node's mount namespace, the node's own directory
// <StateDir>/<node>/binds/<Path with / as _>. Shared makes it rshared in
// the node (mount propagation, as a kubelet's root dir needs).
type Bind struct {
	Path   string `json:"path"`
	Shared bool   `json:"shared,omitempty"`
}

// Node is one node of a cluster. Its fields are set by the cluster.
type Node struct {
	Name   string `json:"name"`
	Index  int    `json:"index"`
	IP     string `json:"ip"`
	Netns  string `json:"netns"`  // name under /run/netns
	Veth   string `json:"veth"`   // host side; the node side is eth0
	Cgroup string `json:"cgroup"` // path in each v1 hierarchy, e.g. /hke-node-a
	Dir    string `json:"dir"`    // the node's directory in the state dir
	// Holder is the pid of the process holding the mount namespace, and
	// HolderStart its start time (clock ticks since boot), so that a reused
	// pid is never taken for it.
	Holder      int    `json:"holder"`
	HolderStart uint64 `json:"holderStart"`

	c *Cluster
}

// Cluster is a set of nodes on one bridge.
type Cluster struct {
	mu struct {
		sync.Mutex
		st state
	}
}

type state struct {
	Config Config `json:"config"`
	HostIP string `json:"hostIP"`
	Bits   int    `json:"bits"`
	Nodes  []*Node
	// CreatedDirs are mount points made on the host for Binds, removed by
	// Destroy if still empty.
	CreatedDirs []string `json:"createdDirs,omitempty"`
}

const stateFile = "state.json"

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,22}[a-z0-9])?$`)
	prefixRE = regexp.MustCompile(`^[a-z0-9]{1,8}$`)
)

// Create makes the bridge and the named nodes. On an error it removes what it
// made. The state dir must not hold a cluster already.
func Create(ctx context.Context, cfg Config, names ...string) (*Cluster, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	pfx, err := netip.ParsePrefix(cfg.Subnet)
	if err != nil || !pfx.Addr().Is4() || pfx.Bits() < 16 || pfx.Bits() > 28 {
		return nil, fmt.Errorf("nodes: subnet %q: want an IPv4 prefix from /16 to /28, e.g. 10.91.0.0/24", cfg.Subnet)
	}
	pfx = pfx.Masked()
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("nodes: state dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, stateFile)); err == nil {
		return nil, fmt.Errorf("nodes: %s already holds a cluster: destroy it first (hoard-nodes --state %s destroy)", cfg.StateDir, cfg.StateDir)
	}
	if _, err := os.Stat("/sys/class/net/" + cfg.Bridge); err == nil {
		return nil, fmt.Errorf("nodes: interface %s exists: another cluster uses it (or a crashed run left it: ip link del %s)", cfg.Bridge, cfg.Bridge)
	}
	if len(cgroupHierarchies()) == 0 {
		return nil, errors.New("nodes: no cgroup v1 hierarchy under /sys/fs/cgroup (cgroup v2 is not supported)")
	}
	c := &Cluster{}
	c.mu.st = state{Config: cfg, HostIP: pfx.Addr().Next().String(), Bits: pfx.Bits()}
	err = c.locked(func(st *state) error {
		if err := run(ctx, "ip", "link", "add", cfg.Bridge, "type", "bridge"); err != nil {
			return err
		}
		if err := run(ctx, "ip", "addr", "add", fmt.Sprintf("%s/%d", st.HostIP, st.Bits), "dev", cfg.Bridge); err != nil {
			return err
		}
		return run(ctx, "ip", "link", "set", cfg.Bridge, "up")
	})
	if err == nil {
		_, err = c.AddNodes(ctx, names...)
	}
	if err != nil {
		if derr := c.Destroy(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, err
	}
	return c, nil
}

func (cfg *Config) check() error {
	if !prefixRE.MatchString(cfg.Prefix) {
		return fmt.Errorf("nodes: prefix %q: want 1-8 characters of [a-z0-9]", cfg.Prefix)
	}
	if cfg.Bridge == "" {
		cfg.Bridge = cfg.Prefix + "0"
	}
	if len(cfg.Bridge) > 15 {
		return fmt.Errorf("nodes: bridge name %q: at most 15 characters", cfg.Bridge)
	}
	if cfg.StateDir == "" {
		return errors.New("nodes: no state dir")
	}
	abs, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return err
	}
	cfg.StateDir = abs
	for _, b := range cfg.Binds {
		if !filepath.IsAbs(b.Path) || filepath.Clean(b.Path) != b.Path || b.Path == "/" {
			return fmt.Errorf("nodes: bind %q: want a clean absolute path other than /", b.Path)
		}
	}
	return nil
}

// Open loads the cluster recorded in stateDir.
func Open(stateDir string) (*Cluster, error) {
	c := &Cluster{}
	c.mu.st.Config.StateDir = stateDir
	if err := c.load(&c.mu.st); err != nil {
		return nil, err
	}
	return c, nil
}

// Config returns the cluster's configuration.
func (c *Cluster) Config() Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.st.Config
}

// HostIP is the host's address on the bridge.
func (c *Cluster) HostIP() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.st.HostIP
}

// Nodes returns the nodes, by index.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Node, len(c.mu.st.Nodes))
	for i, n := range c.mu.st.Nodes {
		cp := *n
		cp.c = c
		out[i] = &cp
	}
	return out
}

// Node returns the node called name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// AddNodes makes nodes and returns them. A node that fails is removed again.
func (c *Cluster) AddNodes(ctx context.Context, names ...string) ([]*Node, error) {
	var added []*Node
	for _, name := range names {
		var n *Node
		err := c.locked(func(st *state) error {
			var err error
			n, err = st.addNode(ctx, name)
			return err
		})
		if err != nil {
			return added, err
		}
		n.c = c
		added = append(added, n)
	}
	return added, nil
}

// RemoveNodes kills the nodes' processes and removes them.
func (c *Cluster) RemoveNodes(ctx context.Context, names ...string) error {
	return c.locked(func(st *state) error {
		var errs []error
		for _, name := range names {
			i := st.find(name)
			if i < 0 {
				errs = append(errs, fmt.Errorf("nodes: no node %q", name))
				continue
			}
			n := st.Nodes[i]
			n.c = c
			errs = append(errs, n.remove(ctx))
			st.Nodes = append(st.Nodes[:i], st.Nodes[i+1:]...)
		}
		return errors.Join(errs...)
	})
}

// Destroy removes every node (killing their processes), the bridge, the
// mount points made for binds and, when nothing is mounted under it any
// more, the state dir. Safe to call again after a partial failure.
func (c *Cluster) Destroy(ctx context.Context) error {
	if _, err := os.Stat(c.Config().StateDir); errors.Is(err, os.ErrNotExist) {
		return nil // destroyed already
	}
	return c.locked(func(st *state) error {
		var errs []error
		for _, n := range st.Nodes {
			n.c = c
			errs = append(errs, n.remove(ctx))
		}
		st.Nodes = nil
		errs = append(errs, delLink(ctx, st.Config.Bridge))
		for i := len(st.CreatedDirs) - 1; i >= 0; i-- {
			os.Remove(st.CreatedDirs[i]) // only if empty: a node's data never lives there
		}
		st.CreatedDirs = nil
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if m := mountsUnder(st.Config.StateDir); len(m) > 0 {
			return fmt.Errorf("nodes: %d mounts left under %s (first: %s); not removing it", len(m), st.Config.StateDir, m[0])
		}
		return errDestroyed
	})
}

// errDestroyed tells locked to remove the state dir instead of saving.
var errDestroyed = errors.New("destroyed")

// locked runs fn with the cluster's state, under the state dir's file lock
// (other processes share the cluster), reloaded before and saved after.
func (c *Cluster) locked(fn func(*state) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	dir := c.mu.st.Config.StateDir
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("nodes: lock: %w", err)
	}
	defer lock.Close()
	if err := flock(lock, 60*time.Second); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
		if err := c.load(&c.mu.st); err != nil {
			return err
		}
	}
	err = fn(&c.mu.st)
	if errors.Is(err, errDestroyed) {
		if rerr := os.RemoveAll(dir); rerr != nil {
			return fmt.Errorf("nodes: remove state dir: %w", rerr)
		}
		return nil
	}
	if serr := c.save(&c.mu.st); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// delLink deletes a network interface unless it is gone already (a veth
// goes away a moment after its peer's namespace).
func delLink(ctx context.Context, name string) error {
	if _, err := os.Stat("/sys/class/net/" + name); err != nil {
		return nil
	}
	err := run(ctx, "ip", "link", "del", name)
	if _, serr := os.Stat("/sys/class/net/" + name); err != nil && serr != nil {
		return nil
	}
	return err
}

func flock(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			return fmt.Errorf("nodes: lock %s: %w", f.Name(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) load(st *state) error {
	dir := st.Config.StateDir
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return fmt.Errorf("nodes: no cluster in %s: %w", dir, err)
	}
	var got state
	if err := json.Unmarshal(b, &got); err != nil {
		return fmt.Errorf("nodes: %s: %w", filepath.Join(dir, stateFile), err)
	}
	*st = got
	return nil
}

func (c *Cluster) save(st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(st.Config.StateDir, stateFile)
	if err := os.WriteFile(path+".tmp", append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("nodes: save state: %w", err)
	}
	return os.Rename(path+".tmp", path)
}

func (st *state) find(name string) int {
	for i, n := range st.Nodes {
		if n.Name == name {
			return i
		}
	}
	return -1
}

// nodeIP is the (10+index)-th address of the subnet.
func (st *state) nodeIP(index int) (string, error) {
	host, _ := netip.ParseAddr(st.HostIP)
	b := host.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(9 + index) // host is the 1st address
	ip := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	pfx := netip.PrefixFrom(host, st.Bits).Masked()
	last := v | (1<<(32-st.Bits) - 1)
	if !pfx.Contains(ip) || v >= last {
		return "", fmt.Errorf("nodes: subnet %s has no room for node %d", pfx, index)
	}
	return ip.String(), nil
}

func (st *state) addNode(ctx context.Context, name string) (*Node, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("nodes: node name %q: want [a-z0-9-], at most 24 characters", name)
	}
	if st.find(name) >= 0 {
		return nil, fmt.Errorf("nodes: node %q exists", name)
	}
	used := map[int]bool{}
	for _, n := range st.Nodes {
		used[n.Index] = true
	}
	index := 1
	for used[index] {
		index++
	}
	ip, err := st.nodeIP(index)
	if err != nil {
		return nil, err
	}
	cfg := st.Config
	n := &Node{
		Name: name, Index: index, IP: ip,
		Netns:  cfg.Prefix + "-" + name,
		Veth:   fmt.Sprintf("%sv%d", cfg.Prefix, index),
		Cgroup: "/" + cfg.Prefix + "-" + name,
		Dir:    filepath.Join(cfg.StateDir, name),
	}
	if _, err := os.Stat("/run/netns/" + n.Netns); err == nil {
		return nil, fmt.Errorf("nodes: network namespace %s exists (a crashed run? ip netns del %s)", n.Netns, n.Netns)
	}
	// Recorded first, so that Destroy removes a half-made node.
	st.Nodes = append(st.Nodes, n)
	if err := st.makeNode(ctx, n); err != nil {
		return nil, fmt.Errorf("nodes: make node %s: %w", name, err)
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Index < st.Nodes[j].Index })
	return n, nil
}

func (st *state) makeNode(ctx context.Context, n *Node) error {
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return err
	}
	steps := [][]string{
		{"ip", "netns", "add", n.Netns},
		{"ip", "link", "add", n.Veth, "type", "veth", "peer", "name", "eth0", "netns", n.Netns},
		{"ip", "link", "set", n.Veth, "master", st.Config.Bridge, "up"},
		{"ip", "-n", n.Netns, "link", "set", "lo", "up"},
		{"ip", "-n", n.Netns, "addr", "add", fmt.Sprintf("%s/%d", n.IP, st.Bits), "dev", "eth0"},
		{"ip", "-n", n.Netns, "link", "set", "eth0", "up"},
		// Pods behind a node route through it (Kubernetes pod CIDRs).
		{"nsenter", "--net=/run/netns/" + n.Netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	if err := makeCgroup(n.Cgroup); err != nil {
		return err
	}
	return st.startHolder(ctx, n)
}

// startHolder starts the process that holds the node's mount namespace,
// with its binds mounted, and waits until it is ready.
func (st *state) startHolder(ctx context.Context, n *Node) error {
	script := "set -e\n"
	for _, b := range st.Config.Binds {
		src := filepath.Join(n.Dir, "binds", strings.ReplaceAll(strings.Trim(b.Path, "/"), "/", "_"))
		if err := os.MkdirAll(src, 0o755); err != nil {
			return err
		}
		if _, err := os.Stat(b.Path); errors.Is(err, os.ErrNotExist) {
			if err := mkdirRecorded(b.Path, &st.CreatedDirs); err != nil {
				return err
			}
		}
		script += fmt.Sprintf("mount --bind %s %s\n", shellQuote(src), shellQuote(b.Path))
		if b.Shared {
			script += fmt.Sprintf("mount --make-rshared %s\n", shellQuote(b.Path))
		}
	}
	script += "echo holder-ready\nexec sleep infinity\n"
	logPath := filepath.Join(n.Dir, "holder.log")
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := execCommand("nsenter", "--net=/run/netns/"+n.Netns, "--",
		"unshare", "--mount", "--propagation", "slave", "--", "sh", "-c", script)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives a hoard-nodes command
	if err := cmd.Start(); err != nil {
		return err
	}
	n.Holder = cmd.Process.Pid
	go cmd.Wait() // reaped if it dies while this process runs
	n.HolderStart, _ = startTime(n.Holder)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), "holder-ready") {
			return nil
		}
		if !alive(n.Holder) || time.Now().After(deadline) {
			return fmt.Errorf("holder of %s did not start: %s", n.Name, strings.TrimSpace(string(b)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mkdirRecorded makes dir and its missing parents, appending each to made.
func mkdirRecorded(dir string, made *[]string) error {
	var missing []string
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		*made = append(*made, missing[i])
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
