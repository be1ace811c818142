package nodes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Command returns a command that runs name in the node: in its network and
// mount namespaces (those of its holder) and its cgroup. The caller starts,
// waits for and kills it like any exec.Cmd; Kill also ends it. If the node's
// holder is gone, Start returns an error saying so.
func (n *Node) Command(ctx context.Context, name string, arg ...string) *exec.Cmd {
	// sh writes its own pid into the node's cgroups, then execs nsenter,
	// which execs name: one process all along, so nothing escapes the cgroup.
	script := `while [ "$1" != -- ]; do echo $$ >"$1" || exit 125; shift; done; shift; exec nsenter -t "$0" -m -n -- "$@"`
	args := []string{"-c", script, strconv.Itoa(n.Holder)}
	for _, h := range cgroupHierarchies() {
		args = append(args, filepath.Join(h, n.Cgroup, "cgroup.procs"))
	}
	args = append(append(args, "--", name), arg...)
	cmd := exec.CommandContext(ctx, "/bin/sh", args...)
	if err := n.holderAlive(); err != nil {
		cmd.Err = err
	}
	return cmd
}

// Exec replaces the calling process with name run in the node (see
// Command). It returns only on error.
func (n *Node) Exec(name string, arg ...string) error {
	cmd := n.Command(context.Background(), name, arg...)
	if cmd.Err != nil {
		return cmd.Err
	}
	return syscall.Exec(cmd.Path, cmd.Args, os.Environ())
}

func (n *Node) holderAlive() error {
	if n.Holder <= 0 || !alive(n.Holder) {
		return fmt.Errorf("nodes: node %s is gone (its holder process %d is not running)", n.Name, n.Holder)
	}
	if st, err := startTime(n.Holder); err != nil || st != n.HolderStart {
		return fmt.Errorf("nodes: node %s is gone (pid %d is another process now)", n.Name, n.Holder)
	}
	return nil
}

// Processes returns the pids of the node's live processes other than its
// holder: those in its network namespace, its mount namespace or its cgroup.
func (n *Node) Processes() ([]int, error) {
	netIno, err := inode("/run/netns/" + n.Netns)
	if err != nil {
		return nil, fmt.Errorf("nodes: node %s: %w", n.Name, err)
	}
	var mntIno uint64
	if n.holderAlive() == nil {
		mntIno, _ = inode(fmt.Sprintf("/proc/%d/ns/mnt", n.Holder))
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == n.Holder || pid == self || !alive(pid) {
			continue
		}
		if ino, err := inode(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && ino == netIno {
			pids = append(pids, pid)
		} else if ino, err := inode(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && mntIno != 0 && ino == mntIno {
			pids = append(pids, pid)
		} else if inCgroup(pid, n.Cgroup) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Kill sends SIGKILL to every process of the node (Processes) until none is
// left, and returns how many it killed. The namespaces, mounts and holder
// stay: the node is down and can be brought back by starting its processes.
func (n *Node) Kill(ctx context.Context) (int, error) {
	killed := map[int]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids, err := n.Processes()
		if err != nil {
			return len(killed), err
		}
		if len(pids) == 0 {
			return len(killed), nil
		}
		if time.Now().After(deadline) {
			return len(killed), fmt.Errorf("nodes: node %s: processes %v still alive after SIGKILL", n.Name, pids)
		}
		for _, p := range pids {
			if syscall.Kill(p, syscall.SIGKILL) == nil {
				killed[p] = true
			}
		}
		select {
		case <-ctx.Done():
			return len(killed), ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SetLink sets the node's link up or down. Down detaches it from the bridge
// (its host-side veth down): packets to and from it are lost, as on a cut
// cable, and peers time out rather than being refused.
func (n *Node) SetLink(ctx context.Context, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return run(ctx, "ip", "link", "set", n.Veth, state)
}

// Impairment degrades a node's link, both ways. The zero value is a clean
// link.
type Impairment struct {
	// Rate bounds the bandwidth, in bits per second (tc tbf, or netem's rate).
	Rate int64
	// Loss is the fraction of packets dropped, 0 to 1 (iptables statistic
	// rules in the node, or netem's loss).
	Loss float64
	// Delay is added to every packet (tc netem; not every kernel has it:
	// then Impair returns ErrNoNetem).
	Delay time.Duration
}

// ErrNoNetem says that the kernel has no netem queueing discipline
// (CONFIG_NET_SCH_NETEM), so a link cannot be delayed.
var ErrNoNetem = errors.New("the kernel has no sch_netem (CONFIG_NET_SCH_NETEM): delay cannot be emulated; rate and loss can")

// Impair replaces the impairment of the node's link with im (the zero
// value removes it). If it fails, the link is left unimpaired: a half-made
// impairment (a rate limit without its loss) must not outlive a failed
// test and slow the ones after it.
func (n *Node) Impair(ctx context.Context, im Impairment) error {
	if im.Loss < 0 || im.Loss > 1 || im.Rate < 0 || im.Delay < 0 {
		return fmt.Errorf("nodes: impairment %+v: loss must be 0 to 1, rate and delay not negative", im)
	}
	if im.Loss > 0 && im.Delay == 0 {
		if _, err := exec.LookPath("iptables"); err != nil {
			return fmt.Errorf("nodes: node %s: packet loss needs iptables (Debian: iptables): %w", n.Name, err)
		}
	}
	err := n.impair(ctx, im)
	if err != nil && im != (Impairment{}) {
		n.impair(ctx, Impairment{}) // best effort: err says what went wrong
	}
	return err
}

func (n *Node) impair(ctx context.Context, im Impairment) error {
	var errs []error
	// Clear first: the node side is reached with tc -n.
	devs := [][]string{{n.Veth}, {"-n", n.Netns, "eth0"}}
	for _, d := range devs {
		run(ctx, "tc", qdiscArgs(d, "del")...) // fails if there is none: ignore
	}
	errs = append(errs, n.setLoss(ctx, 0))
	if im == (Impairment{}) {
		return errors.Join(errs...)
	}
	var spec []string
	switch {
	case im.Delay > 0:
		spec = []string{"netem", "delay", fmt.Sprintf("%dus", im.Delay.Microseconds())}
		if im.Rate > 0 {
			spec = append(spec, "rate", fmt.Sprintf("%dbit", im.Rate))
		}
		if im.Loss > 0 {
			spec = append(spec, "loss", fmt.Sprintf("%g%%", im.Loss*100))
		}
	case im.Rate > 0:
		// burst: at least one MTU-sized packet and 10 ms of traffic.
		burst := max(im.Rate/8/100, 16<<10)
		spec = []string{"tbf", "rate", fmt.Sprintf("%dbit", im.Rate), "burst", strconv.FormatInt(burst, 10), "latency", "1s"}
	}
	if spec != nil {
		for _, d := range devs {
			if err := run(ctx, "tc", append(qdiscArgs(d, "replace"), spec...)...); err != nil {
				if strings.Contains(err.Error(), "qdisc kind is unknown") {
					return ErrNoNetem
				}
				errs = append(errs, err)
			}
		}
	}
	if im.Loss > 0 && im.Delay == 0 {
		errs = append(errs, n.setLoss(ctx, im.Loss))
	}
	return errors.Join(errs...)
}

// qdiscArgs: tc [-n NETNS] qdisc VERB dev DEV root.
func qdiscArgs(dev []string, verb string) []string {
	args := append([]string{}, dev[:len(dev)-1]...)
	return append(args, "qdisc", verb, "dev", dev[len(dev)-1], "root")
}

// lossChain is the iptables chain in a node's netns that drops packets at
// random; INPUT, OUTPUT and FORWARD jump to it.
const lossChain = "HOARD-NODES-LOSS"

// setLoss drops the fraction p of the packets entering, leaving or crossing
// the node (0: none).
func (n *Node) setLoss(ctx context.Context, p float64) error {
	ipt := func(arg ...string) error {
		return run(ctx, "nsenter", append([]string{"--net=/run/netns/" + n.Netns, "iptables", "-w", "5"}, arg...)...)
	}
	hooks := []string{"INPUT", "OUTPUT", "FORWARD"}
	if p == 0 {
		for _, h := range hooks {
			for ipt("-D", h, "-j", lossChain) == nil {
			}
		}
		ipt("-F", lossChain)
		ipt("-X", lossChain)
		return nil
	}
	if err := ipt("-N", lossChain); err != nil {
		return err
	}
	if err := ipt("-A", lossChain, "-m", "statistic", "--mode", "random", "--probability", fmt.Sprintf("%.4f", p), "-j", "DROP"); err != nil {
		return err
	}
	for _, h := range hooks {
		if err := ipt("-I", h, "1", "-j", lossChain); err != nil {
			return err
		}
	}
	return nil
}

// Freeze stops (or, with frozen false, resumes) every process in the node's
// cgroup at once (cgroup freezer): a hung node whose sockets stay open.
// Processes outside the cgroup (not started with Command) are not frozen.
func (n *Node) Freeze(frozen bool) error {
	state := "THAWED"
	if frozen {
		state = "FROZEN"
	}
	path := filepath.Join(cgroupRoot, "freezer", n.Cgroup, "freezer.state")
	if err := os.WriteFile(path, []byte(state), 0o644); err != nil {
		return fmt.Errorf("nodes: node %s: freeze: %w", n.Name, err)
	}
	return nil
}

// Usage is what a node's cgroup has used.
type Usage struct {
	CPU       time.Duration // CPU time of all its processes, since the node was made
	RSS       int64         // resident anonymous memory now (memory.stat total_rss)
	Cache     int64         // page cache charged to it now
	MaxMemory int64         // peak of memory use, page cache included
	Processes int
}

// Usage reads the node's cgroup counters.
func (n *Node) Usage() (Usage, error) {
	var u Usage
	ns, err := readInt(filepath.Join(cgroupRoot, "cpuacct", n.Cgroup, "cpuacct.usage"))
	if err != nil {
		return u, err
	}
	u.CPU = time.Duration(ns)
	stat, err := os.ReadFile(filepath.Join(cgroupRoot, "memory", n.Cgroup, "memory.stat"))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(stat), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "total_rss":
			u.RSS, _ = strconv.ParseInt(v, 10, 64)
		case "total_cache":
			u.Cache, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	u.MaxMemory, _ = readInt(filepath.Join(cgroupRoot, "memory", n.Cgroup, "memory.max_usage_in_bytes"))
	pids, err := n.Processes()
	u.Processes = len(pids)
	return u, err
}

// remove kills the node's processes and holder and removes its namespace,
// veth and cgroups. Each step is skipped if already done.
func (n *Node) remove(ctx context.Context) error {
	var errs []error
	if _, err := os.Stat("/run/netns/" + n.Netns); err == nil {
		if _, err := n.Kill(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if n.holderAlive() == nil {
		syscall.Kill(n.Holder, syscall.SIGKILL)
		for i := 0; i < 200 && alive(n.Holder); i++ {
			time.Sleep(25 * time.Millisecond)
		}
	}
	if _, err := os.Stat("/run/netns/" + n.Netns); err == nil {
		errs = append(errs, run(ctx, "ip", "netns", "del", n.Netns))
	}
	errs = append(errs, delLink(ctx, n.Veth))
	errs = append(errs, removeCgroup(n.Cgroup))
	return errors.Join(errs...)
}
