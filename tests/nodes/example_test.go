package nodes_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"hoard.dev/hoard/tests/nodes"
	"hoard.dev/hoard/tests/testenv"
)

// A fault test at the process level: three nodes, an etcd member and a
// worker in each, a node lost and a link degraded. (Not run: it shows the
// calls; TestNodes runs them.)
func Example() {
	var t *testing.T // the test's
	ctx := context.Background()
	// A prefix, bridge and subnet of the suite's own: the e2e suite uses
	// hke/hke0/10.91.0.0/24, TestNodes hnt/10.95.0.0/24.
	c := nodes.ForTest(t, nodes.Config{Prefix: "hft", Subnet: "10.94.0.0/24",
		Binds: []nodes.Bind{{Path: "/var/lib/hoard"}}}, "a", "b", "c")
	var peers []string
	for _, n := range c.Nodes() {
		peers = append(peers, fmt.Sprintf("%s=http://%s:2380", n.Name, n.IP))
	}
	var endpoints []string
	for _, n := range c.Nodes() {
		endpoints = append(endpoints, "http://"+n.IP+":2379")
		nodes.Start(t, n, "etcd", "etcd", "--name", n.Name, "--data-dir", n.Dir+"/etcd",
			"--listen-client-urls", "http://"+n.IP+":2379", "--advertise-client-urls", "http://"+n.IP+":2379",
			"--listen-peer-urls", "http://"+n.IP+":2380", "--initial-advertise-peer-urls", "http://"+n.IP+":2380",
			"--initial-cluster", strings.Join(peers, ","))
	}
	hoard := testenv.HoardBinary(t)
	// On the host's bridge address, so that the nodes reach it.
	s3 := testenv.StartMinIOOn(t, c.HostIP())
	for _, n := range c.Nodes() {
		// /var/lib/hoard is each node's own (Binds). Credentials go in the
		// environment (cmd.Env with n.Command), never in flags.
		cmd := n.Command(ctx, hoard, "worker", "--cache-dir", "/var/lib/hoard/worker",
			"--listen", n.IP+":7070", "--etcd", strings.Join(endpoints, ","),
			"--s3-endpoint", s3.Endpoint(), "--s3-insecure", "--s3-path-style")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3.AccessKey(), "AWS_SECRET_ACCESS_KEY="+s3.SecretKey())
		nodes.StartCommand(t, n, "worker", cmd)
	}
	b := c.Node("b")
	b.Kill(ctx)                                                   // node b lost: every process of it, its pods too
	nodes.Start(t, b, "worker", hoard, "worker" /* ... */)        // and back
	b.SetLink(ctx, false)                                         // cut: peers time out
	b.SetLink(ctx, true)                                          // healed
	b.Impair(ctx, nodes.Impairment{Rate: 10_000_000, Loss: 0.05}) // slow and lossy
	b.Freeze(true)                                                // hung: sockets open, nothing answers
	u, _ := b.Usage()                                             // CPU and memory of the node's cgroup
	fmt.Println(u.CPU, u.RSS)
}
