// Command hoard-nodes makes and drives the test nodes of package
// hoard.dev/hoard/tests/nodes from a shell: the multi-node e2e suite
// (scripts/e2e/multinode) runs its kubelets and containerds in them. Every
// command but create finds the cluster by --state (or $HOARD_NODES_STATE).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"hoard.dev/hoard/tests/nodes"
)

func main() {
	closeInheritedOnExec()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "hoard-nodes:", err)
		os.Exit(1)
	}
}

// closeInheritedOnExec marks every descriptor this process inherited beyond
// stdin, stdout and stderr close-on-exec, so that the processes it starts
// (a node's holder lives on after it) do not keep its caller's files open:
// a lock a script holds on fd 8 would otherwise stay taken by the holders
// after the script is killed.
func closeInheritedOnExec() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

func newRoot() *cobra.Command {
	var state string
	root := &cobra.Command{
		Use:   "hoard-nodes",
		Short: "Make test nodes (network + mount namespaces, a cgroup each) on one machine and drive them",
		Long: `hoard-nodes makes "nodes" on one machine for tests: each a network namespace on a
bridge (host = the subnet's first address, node i = the (10+i)-th), a mount
namespace held by a holder process (with per-node directories bound over
--bind paths) and a cgroup of its own in every cgroup v1 hierarchy. Then it
runs processes in them, kills them, cuts or degrades their links. Root only.
See package hoard.dev/hoard/tests/nodes for the Go API.`,
		Example: `  hoard-nodes --state /tmp/n create --prefix hke --subnet 10.91.0.0/24 --bind /var/lib/kubelet:shared node-a node-b
  hoard-nodes --state /tmp/n exec node-a -- ip addr       # any command, in node-a
  hoard-nodes --state /tmp/n kill node-b                  # every process of node-b
  hoard-nodes --state /tmp/n impair node-b --loss 0.05 --rate 10mbit
  hoard-nodes --state /tmp/n destroy`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&state, "state", os.Getenv("HOARD_NODES_STATE"), "state dir of the cluster (default $HOARD_NODES_STATE)")
	open := func() (*nodes.Cluster, error) {
		if state == "" {
			return nil, errors.New("no --state (or HOARD_NODES_STATE) given")
		}
		return nodes.Open(state)
	}
	node := func(name string) (*nodes.Node, error) {
		c, err := open()
		if err != nil {
			return nil, err
		}
		n := c.Node(name)
		if n == nil {
			return nil, fmt.Errorf("no node %q in %s", name, state)
		}
		return n, nil
	}
	root.AddCommand(newCreate(&state), newAdd(open), newRemove(open), newDestroy(open), newList(open),
		newIP(open, node), newExec(node), newPs(node), newKill(node), newLink(node), newImpair(node),
		newFreeze(node, true), newFreeze(node, false), newUsage(open))
	return root
}

func newCreate(state *string) *cobra.Command {
	var cfg nodes.Config
	var binds []string
	cmd := &cobra.Command{
		Use:   "create NODE...",
		Short: "Make the bridge and the nodes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.StateDir = *state
			for _, b := range binds {
				path, opt, _ := strings.Cut(b, ":")
				if opt != "" && opt != "shared" {
					return fmt.Errorf("--bind %q: the only option is :shared", b)
				}
				cfg.Binds = append(cfg.Binds, nodes.Bind{Path: path, Shared: opt == "shared"})
			}
			c, err := nodes.Create(cmd.Context(), cfg, args...)
			if err != nil {
				return err
			}
			printNodes(c)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Prefix, "prefix", "", "names of what is made on the host (netns <prefix>-<node>, veths, cgroups); 1-8 of [a-z0-9]")
	fs.StringVar(&cfg.Bridge, "bridge", "", "host bridge (default <prefix>0)")
	fs.StringVar(&cfg.Subnet, "subnet", "", "node network, e.g. 10.91.0.0/24")
	fs.StringArrayVar(&binds, "bind", nil, "PATH[:shared]: a directory of each node's own over PATH in its mount namespace (repeatable)")
	cmd.MarkFlagRequired("prefix")
	cmd.MarkFlagRequired("subnet")
	return cmd
}

func printNodes(c *nodes.Cluster) {
	for _, n := range c.Nodes() {
		fmt.Printf("%s %s %s %d %s\n", n.Name, n.IP, n.Netns, n.Holder, n.Dir)
	}
}

func newAdd(open func() (*nodes.Cluster, error)) *cobra.Command {
	return &cobra.Command{
		Use: "add NODE...", Short: "Add nodes", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			_, err = c.AddNodes(cmd.Context(), args...)
			return err
		},
	}
}

func newRemove(open func() (*nodes.Cluster, error)) *cobra.Command {
	return &cobra.Command{
		Use: "remove NODE...", Short: "Kill the nodes' processes and remove the nodes", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			return c.RemoveNodes(cmd.Context(), args...)
		},
	}
}

func newDestroy(open func() (*nodes.Cluster, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "destroy",
		Short: "Kill every node's processes, remove the nodes, the bridge and the state dir (no error if there is no cluster)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := open()
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			return c.Destroy(cmd.Context())
		},
	}
}

func newList(open func() (*nodes.Cluster, error)) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "Print each node: name, IP, netns, holder pid, directory", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			printNodes(c)
			return nil
		},
	}
}

func newIP(open func() (*nodes.Cluster, error), node func(string) (*nodes.Node, error)) *cobra.Command {
	return &cobra.Command{
		Use: "ip [NODE]", Short: "Print a node's address (without NODE: the host's, on the bridge)", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				c, err := open()
				if err != nil {
					return err
				}
				fmt.Println(c.HostIP())
				return nil
			}
			n, err := node(args[0])
			if err != nil {
				return err
			}
			fmt.Println(n.IP)
			return nil
		},
	}
}

func newExec(node func(string) (*nodes.Node, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "exec NODE -- COMMAND [ARG...]",
		Short: "Run a command in a node (its network and mount namespaces and its cgroup), replacing this process",
		Long: `Run a command in a node: in its network and mount namespaces and its cgroup.
hoard-nodes replaces itself with it (the pid stays the same), so
'hoard-nodes exec node-a -- kubelet ... &' gives the shell the kubelet's pid.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := node(args[0])
			if err != nil {
				return err
			}
			return n.Exec(args[1], args[2:]...)
		},
	}
}

func newPs(node func(string) (*nodes.Node, error)) *cobra.Command {
	return &cobra.Command{
		Use: "ps NODE", Short: "Print the pids of a node's processes (its holder excepted)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := node(args[0])
			if err != nil {
				return err
			}
			pids, err := n.Processes()
			for _, p := range pids {
				fmt.Println(p)
			}
			return err
		},
	}
}

func newKill(node func(string) (*nodes.Node, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "kill NODE...",
		Short: "SIGKILL every process of the nodes until none is left; the namespaces stay, so the node can come back",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range args {
				n, err := node(name)
				if err != nil {
					return err
				}
				start := time.Now()
				k, err := n.Kill(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Printf("%s: killed %d processes in %v\n", name, k, time.Since(start).Round(time.Millisecond))
			}
			return nil
		},
	}
}

func newLink(node func(string) (*nodes.Node, error)) *cobra.Command {
	return &cobra.Command{
		Use: "link NODE up|down", Short: "Set a node's link up or down (down: packets lost, peers time out)",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := node(args[0])
			if err != nil {
				return err
			}
			if args[1] != "up" && args[1] != "down" {
				return fmt.Errorf("link state %q: want up or down", args[1])
			}
			return n.SetLink(cmd.Context(), args[1] == "up")
		},
	}
}

func newImpair(node func(string) (*nodes.Node, error)) *cobra.Command {
	var (
		im   nodes.Impairment
		rate string
	)
	cmd := &cobra.Command{
		Use:   "impair NODE",
		Short: "Degrade a node's link both ways (no flags: a clean link again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := node(args[0])
			if err != nil {
				return err
			}
			if rate != "" {
				if im.Rate, err = parseRate(rate); err != nil {
					return err
				}
			}
			return n.Impair(cmd.Context(), im)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&rate, "rate", "", "bandwidth, e.g. 10mbit, 500kbit")
	fs.Float64Var(&im.Loss, "loss", 0, "fraction of packets dropped, 0 to 1")
	fs.DurationVar(&im.Delay, "delay", 0, "added to every packet (needs the kernel's netem)")
	return cmd
}

func parseRate(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(strings.ToLower(s), u.suffix); ok {
			var n int64
			if _, err := fmt.Sscanf(v, "%d", &n); err == nil && n > 0 {
				return n * u.mult, nil
			}
		}
	}
	return 0, fmt.Errorf("--rate %q: want a positive number with bit, kbit, mbit or gbit", s)
}

func newFreeze(node func(string) (*nodes.Node, error), frozen bool) *cobra.Command {
	use, short := "thaw NODE", "Resume a frozen node's processes"
	if frozen {
		use, short = "freeze NODE", "Stop every process in a node's cgroup at once (a hung node: sockets stay open)"
	}
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := node(args[0])
			if err != nil {
				return err
			}
			return n.Freeze(frozen)
		},
	}
}

func newUsage(open func() (*nodes.Cluster, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "usage [NODE...]",
		Short: "Print each node's CPU seconds, resident memory, peak memory (page cache included) and processes",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			want := map[string]bool{}
			for _, a := range args {
				want[a] = true
			}
			for _, n := range c.Nodes() {
				if len(want) > 0 && !want[n.Name] {
					continue
				}
				u, err := n.Usage()
				if err != nil {
					return err
				}
				fmt.Printf("%s cpu=%.1fs rss=%dMiB cache=%dMiB peak=%dMiB procs=%d\n", n.Name, u.CPU.Seconds(),
					u.RSS>>20, u.Cache>>20, u.MaxMemory>>20, u.Processes)
			}
			return nil
		},
	}
}
