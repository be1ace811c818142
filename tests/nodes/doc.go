// Package nodes makes "nodes" on one machine for tests that need several
// hosts talking over a real network: the multi-node Kubernetes e2e suite
// (scripts/e2e/multinode, through the hoard-nodes command in cmd/hoard-nodes)
// and process-level fault tests (workers, hoard mount, etcd members started
// in nodes without Kubernetes).
//
// A node is
//   - a network namespace (/run/netns/<prefix>-<node>) whose eth0 is one end
//     of a veth pair, the other end (<prefix>v<index>) on a bridge the cluster
//     made; the host holds the subnet's first address on the bridge (reach
//     MinIO or an API server there), node i the (10+i)-th;
//   - a mount namespace, held by a holder process (nsenter --net=... unshare
//     --mount --propagation slave, then sleep), in which each Config.Binds
//     path is the node's own directory (e.g. /var/lib/kubelet), rshared
//     where asked; host mounts propagate in, the node's never out;
//   - a cgroup /<prefix>-<node> in every cgroup v1 hierarchy (a kubelet's
//     cgroupRoot), where every process started with Node.Command is placed.
//
// Processes are started in a node with Node.Command (nsenter -t HOLDER -m
// -n, never `ip netns exec`, which remounts /sys and gives each call a mount
// namespace of its own). The processes of a node are those in its network
// namespace, its mount namespace or its cgroup (a pod's containers are in
// the last only); Node.Kill kills them all and leaves the namespaces, so the
// node can be brought back by starting its processes again. Node.SetLink,
// Node.Netem and Node.Freeze make faults on a node's link or processes.
//
// Everything is recorded in Config.StateDir (state.json), so that another
// process (the hoard-nodes command, or the next run after a crash) can Open
// the cluster and Destroy it; Destroy kills only the processes of the
// cluster's nodes and removes only what Create and AddNode made.
//
// Needs root, iproute2 (ip, tc), util-linux (nsenter, unshare) and cgroup
// v1. It never touches interfaces, namespaces or cgroups it did not make.
package nodes
