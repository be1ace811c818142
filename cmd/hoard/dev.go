package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/sources"
)

func newDevCmd() *cobra.Command {
	var (
		dir      string
		workers  int
		port     int
		etcdPort int
		capacity = byteSize(1 << 30)
		files    []string
		s3       s3Flags
		mf       opsFlag
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local cache cluster: an embedded etcd and N workers in one process",
		Long: `Run a whole cache cluster on this machine for trying hoard out and for tests:
an embedded etcd on 127.0.0.1:--etcd-port and --workers workers on
127.0.0.1:--port, --port+1, ... Each worker keeps its pages in
--dir/worker-N. Stop it with Ctrl-C; the cache survives a restart.`,
		Example: `  hoard dev --s3-endpoint http://127.0.0.1:9000 --workers 3
  hoard read --etcd http://127.0.0.1:2379 --insecure-dev --s3-endpoint http://127.0.0.1:9000 s3://bucket/key > /dev/null`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if workers < 1 || workers > 64 {
				return errors.New("--workers: want 1 to 64")
			}
			if dir == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return fmt.Errorf("--dir not given and no home directory: %w", err)
				}
				dir = filepath.Join(home, ".cache", "hoard-dev")
			}
			etcd, err := server.StartEtcd(filepath.Join(dir, "etcd"),
				net.JoinHostPort("127.0.0.1", strconv.Itoa(etcdPort)),
				net.JoinHostPort("127.0.0.1", strconv.Itoa(etcdPort+1)))
			if err != nil {
				return err
			}
			defer etcd.Close()
			ecfg := membership.EtcdConfig{Endpoints: []string{etcd.Endpoint()}, Cluster: "default"}
			var started []*server.Worker
			defer func() {
				for _, w := range started {
					w.Close()
				}
			}()
			// A local test cluster: any S3 source, with the dev's own
			// credentials when a client sends none.
			all, _ := sources.ParsePattern("*")
			devPolicy := sources.Policy{Allow: []sources.Pattern{all}, Own: []sources.Pattern{all}}
			for i := 0; i < workers; i++ {
				w, err := server.StartWorker(cmd.Context(), server.WorkerConfig{
					ID:          fmt.Sprintf("dev-%d", i),
					Listen:      net.JoinHostPort("127.0.0.1", strconv.Itoa(port+i)),
					CacheDir:    filepath.Join(dir, fmt.Sprintf("worker-%d", i)),
					Capacity:    int64(capacity),
					Etcd:        ecfg,
					S3:          s3.config(),
					Files:       files,
					InsecureDev: true,
					Policy:      &devPolicy,
				})
				if err != nil {
					return err
				}
				started = append(started, w)
			}
			if mf.addr != "" {
				w, err := membership.Watch(cmd.Context(), ecfg)
				if err != nil {
					return err
				}
				defer w.Close()
				if err := mf.serveNew(cmd.Context(), "dev", server.NewWorkerCollector(started...), server.NewCoordinatorCollector(w)); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "hoard dev: etcd %s, %d workers from 127.0.0.1:%d, cache in %s\n",
				etcd.Endpoint(), workers, port, dir)
			fmt.Fprintf(cmd.OutOrStdout(), "read through it: hoard read --etcd %s --insecure-dev [--s3-endpoint ...] s3://bucket/key\n", etcd.Endpoint())
			<-cmd.Context().Done()
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dir, "dir", "", "where etcd and the workers keep their data (default ~/.cache/hoard-dev)")
	fs.IntVar(&workers, "workers", 3, "number of workers")
	fs.IntVar(&port, "port", 7070, "port of the first worker; the others follow")
	fs.IntVar(&etcdPort, "etcd-port", 2379, "etcd client port (the peer port is the next one)")
	fs.Var(&capacity, "capacity", "page store capacity of each worker")
	fs.StringSliceVar(&files, "serve-file", nil, "file:///dir sources the workers may read (repeatable)")
	s3.add(fs)
	mf.addMetrics(fs)
	return cmd
}
