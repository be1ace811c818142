package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"hoard.dev/hoard/cachecore/sources"
	"hoard.dev/hoard/driver"
	"hoard.dev/hoard/node/mounter"
)

// defaultMounterMemoryLimit is the mounter's GOMEMLIMIT unless the
// environment sets one: room for a few backends' hot tiers (--hot-cache
// each), their in-flight fetches and the metadata of every volume's view.
const defaultMounterMemoryLimit = 1 << 30

// defaultMounterCacheDir is the embedded cache of a node without a cache
// cluster.
const defaultMounterCacheDir = "/var/lib/hoard/cache"

func newMounterCmd() *cobra.Command {
	var (
		socket   string
		cacheDir string
		capacity = byteSize(10 << 30)
		hot      = byteSize(128 << 20)
		hotTotal = byteSize(256 << 20)
		region   string
		caBundle string
		etcd     etcdFlags
		tlsf     tlsFlags
		health   opsFlag
		own      []string
	)
	cmd := &cobra.Command{
		Use:   "mounter",
		Short: "Serve the node's hoard volumes over FUSE for the CSI node plugin",
		Long: `Run the per-node mounter: the long-lived process that serves every hoard
volume of the node over FUSE, so that the CSI node plugin ('hoard csi --mode
node'), which is restarted and upgraded far more often, holds no FUSE
connection and can restart without breaking a mount.

The plugin mounts each staged volume and passes its /dev/fuse descriptor over
--socket (created with mode 0600); the mounter serves it until it is
unmounted. Volumes of the same bucket, endpoint, credentials and cache
cluster share one cache backend. With --etcd every backend reads through
that cache cluster (a volume's cacheCluster parameter picks the cluster, else
--cluster); without it the mounter runs one embedded cache in --cache-dir,
bounded by --cache-size.

Credentials come with each volume (its node-stage Secret); volumes without
one use this process's own (AWS_* environment, ~/.aws/credentials, pod or
instance role), for the sources --own-credentials-for allows. They are never
logged. In the embedded cache every volume reads with its own credentials,
cached pages included: the cache asks the bucket (a HEAD, remembered for a
minute) whether they may read an object before it serves any of its bytes.

Restarting the mounter aborts every mount it serves ("Transport endpoint is
not connected") until the plugin's restore loop has mounted them again: run
it as its own DaemonSet and upgrade it rarely. GOMEMLIMIT defaults to 1GiB.`,
		Example: `  hoard mounter --socket /run/hoard/mounter.sock --etcd http://etcd.hoard:2379 \
      --tls-ca /etc/hoard/tls/ca.crt --tls-cert /etc/hoard/tls/tls.crt --tls-key /etc/hoard/tls/tls.key
  hoard mounter --cache-dir /var/lib/hoard/cache --cache-size 100GiB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(defaultMounterMemoryLimit)
			}
			ecfg, err := etcd.config()
			if err != nil {
				return err
			}
			cfg := mounter.Config{
				Etcd: ecfg, CacheDir: cacheDir, Capacity: int64(capacity), HotBytes: int64(hot), HotTotalBytes: int64(hotTotal),
				Logger: slog.Default(),
			}
			cfg.S3.Region, cfg.S3.CABundle = region, caBundle
			if cfg.OwnCredentialsFor, err = sources.ParsePatterns(own); err != nil {
				return fmt.Errorf("--own-credentials-for: %w", err)
			}
			tlsConfig, err := tlsf.client()
			if err != nil {
				return err
			}
			cfg.TLS, cfg.InsecureDev = tlsConfig, tlsf.insecureDev
			cfg.TLSFiles = mounter.TLSFiles{CA: tlsf.files.CA, Cert: tlsf.files.Cert, Key: tlsf.files.Key}
			if len(cfg.Etcd.Endpoints) == 0 && cacheDir == "" {
				return errors.New("--cache-dir is required without --etcd")
			}
			m, err := mounter.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer m.Close()
			reg, err := processMetrics("mounter", m.Collectors()...)
			if err != nil {
				return err
			}
			l, err := driver.Listen("unix://" + socket)
			if err != nil {
				return err
			}
			// Ready when the mounter answers on its socket, as the node
			// plugin sees it.
			self := &mounter.Client{Socket: socket}
			ready := func(ctx context.Context) error { _, err := self.Ping(ctx); return err }
			if err := health.serve(cmd.Context(), reg, ready); err != nil {
				l.Close()
				return err
			}
			return m.Serve(cmd.Context(), l)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&socket, "socket", mounter.DefaultSocket, "Unix socket the node plugin hands volumes over (created 0600)")
	fs.StringVar(&cacheDir, "cache-dir", defaultMounterCacheDir, "embedded cache directory, without --etcd; with --etcd, directory listings are kept in its listings/ (within each volume's metadata TTL, apart per endpoint and credentials) so a restaged volume lists nothing again")
	fs.Var(&capacity, "cache-size", "embedded cache capacity on disk")
	fs.Var(&hot, "hot-cache", "in-memory hot tier of each backend (one per bucket and credentials)")
	fs.Var(&hotTotal, "hot-cache-total", "in-memory hot tiers of all backends together")
	fs.StringVar(&region, "s3-region", "", "S3 region of volumes that name none (default: asked from the store)")
	fs.StringVar(&caBundle, "s3-ca-bundle", "", "PEM file of extra CAs to trust for S3 endpoints (default: $AWS_CA_BUNDLE)")
	fs.StringArrayVar(&own, "own-credentials-for", []string{"*"},
		"sources a volume without a Secret may read with this process's own identity: s3+https://HOST[:PORT]/BUCKET with * for any host or bucket, or * for all (repeatable; volumes without a Secret come only from PersistentVolumes and StorageClasses, inline volumes always need one)")
	health.addHealth(fs, "the socket answers", ":9810")
	etcd.add(fs)
	tlsf.add(fs)
	return cmd
}
