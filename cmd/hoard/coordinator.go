package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/server"
)

// coordinatorFlags configure `hoard coordinator`.
type coordinatorFlags struct {
	cfg     server.EtcdConfig
	state   string
	quota   byteSize
	cluster string
	metrics opsFlag
}

func newCoordinatorCmd() *cobra.Command {
	f := &coordinatorFlags{quota: byteSize(512 << 20)}
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a member of the cache cluster's coordination store (an embedded etcd)",
		Long: `Run one member of the etcd cluster that a cache cluster's workers register
in and its clients watch (--etcd of 'hoard worker', 'hoard mounter', 'hoard
mount'). It is etcd itself, embedded in hoard, so an install needs no etcd of
its own: run 1 member, or 3 for a cluster that survives losing one.

Each member keeps its data in --data-dir, which must survive restarts (a
PersistentVolume in Kubernetes). Members find each other through
--initial-cluster (name=http://host:port,... listing every member's peer URL,
read only on the first start); the Helm chart builds it from the
StatefulSet's pod names and its headless Service, or from addresses you give.
A member that joins a running cluster (after 'etcdctl member add') starts
with --initial-cluster-state existing.

Clients use the advertised client URL; /health, /livez and /readyz on the
client port say whether the member serves (readyz: it has a leader).`,
		Example: `  # one member on this machine
  hoard coordinator --data-dir /var/lib/hoard/coordinator
  # member 0 of 3, as the Helm chart runs it: its URLs are its own entry
  # in --initial-cluster (and the client port)
  hoard coordinator --name hoard-coordinator-0 --data-dir /data \
      --listen-client 0.0.0.0:2379 --listen-peer 0.0.0.0:2380 \
      --initial-cluster hoard-coordinator-0=http://hoard-coordinator-0.hoard-coordinator.hoard.svc:2380,...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			slog.Info("coordinator starting", "name", cfg.Name, "data_dir", cfg.Dir,
				"client", cfg.ListenClient, "peer", cfg.ListenPeer, "initial_cluster", cfg.InitialCluster)
			e, err := server.StartEtcdMember(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer e.Close()
			if f.metrics.addr != "" {
				w, err := membership.Watch(cmd.Context(), membership.EtcdConfig{
					Endpoints: []string{localURL(cfg.ListenClient, e.Endpoint())}, Cluster: f.cluster})
				if err != nil {
					return fmt.Errorf("coordinator metrics: %w", err)
				}
				defer w.Close()
				if err := f.metrics.serveNew(cmd.Context(), "coordinator", server.NewCoordinatorCollector(w)); err != nil {
					return err
				}
			}
			slog.Info("coordinator serving", "name", cfg.Name, "endpoint", e.Endpoint())
			select {
			case <-cmd.Context().Done():
				slog.Info("coordinator stopping", "name", cfg.Name)
				return nil
			case err := <-e.Err():
				return fmt.Errorf("coordinator %s: etcd stopped: %w", cfg.Name, err)
			}
		},
	}
	name := os.Getenv("POD_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	fs := cmd.Flags()
	fs.StringVar(&f.cfg.Name, "name", name, "this member's name, unique in the cluster ($POD_NAME when set, else the hostname)")
	fs.StringVar(&f.cfg.Dir, "data-dir", "", "directory of the member's data; must survive restarts (required)")
	fs.StringVar(&f.cfg.ListenClient, "listen-client", "127.0.0.1:2379", "address to serve clients on (host:port)")
	fs.StringVar(&f.cfg.ListenPeer, "listen-peer", "127.0.0.1:2380", "address to serve the other members on (host:port)")
	fs.StringVar(&f.cfg.AdvertiseClient, "advertise-client-url", "", "URL clients reach this member at (default: the advertised peer URL's host with the client port)")
	fs.StringVar(&f.cfg.AdvertisePeer, "advertise-peer-url", "", "URL the other members reach this member at (default: its entry in --initial-cluster, else http://<listen-peer>)")
	fs.StringVar(&f.cfg.InitialCluster, "initial-cluster", "", "every member at bootstrap, name=http://host:port,... (default: this member alone)")
	fs.StringVar(&f.cfg.ClusterToken, "initial-cluster-token", "hoard", "bootstrap token; give each cluster its own when several share a network")
	fs.StringVar(&f.state, "initial-cluster-state", "new", "new: bootstrap a cluster; existing: join a running one")
	fs.Var(&f.quota, "quota", "most bytes the member's database may hold")
	fs.DurationVar(&f.cfg.ReadyTimeout, "ready-timeout", 10*time.Minute, "how long to wait for the cluster to form (the other members to start)")
	fs.StringVar(&f.cluster, "cluster", "default", "the cache cluster whose workers the metrics count (hoard_cluster_*)")
	f.metrics.addMetrics(fs)
	cmd.MarkFlagRequired("data-dir")
	return cmd
}

// localURL is how this process reaches its own member: the client listener
// on loopback when it listens on every address, else the advertised URL.
func localURL(listen, advertised string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return advertised
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "http://" + net.JoinHostPort("127.0.0.1", port)
	}
	return "http://" + listen
}

// config checks the flags and returns the member's configuration.
func (f *coordinatorFlags) config() (server.EtcdConfig, error) {
	cfg := f.cfg
	switch f.state {
	case "new":
	case "existing":
		cfg.Existing = true
	default:
		return cfg, fmt.Errorf("--initial-cluster-state %q: want new or existing", f.state)
	}
	if cfg.Name == "" {
		return cfg, errors.New("--name is required: no $POD_NAME and no hostname")
	}
	cfg.QuotaBytes = int64(f.quota)
	if cfg.QuotaBytes < 16<<20 || cfg.QuotaBytes > 8<<30 {
		return cfg, fmt.Errorf("--quota %s: want 16MiB to 8GiB", f.quota.String())
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return cfg, fmt.Errorf("--data-dir: %w", err)
	}
	return cfg, nil
}
