package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/fusefd"
	"hoard.dev/hoard/fuseview"
)

// defaultMemoryLimit is the GOMEMLIMIT of a mount unless the environment sets
// one: the hot tier, in-flight fetches and metadata fit well inside it, and
// the Go runtime collects harder before the process grows past it.
const defaultMemoryLimit = 384 << 20

func newMountCmd() *cobra.Command {
	var (
		cache cacheFlags
		hot   = byteSize(128 << 20)
		view  viewFlags
		mf    opsFlag
	)
	cmd := &cobra.Command{
		Use:   "mount SOURCE MOUNTPOINT",
		Short: "Mount a bucket (or a prefix of it) as a read-only directory",
		Long: `Mount SOURCE (s3://bucket, s3://bucket/prefix/ or file:///dir) read-only on
MOUNTPOINT, an existing empty directory. Reads go through a cache embedded in
this process, kept in --cache-dir and bounded by --cache-size, which survives
restarts; with --etcd they go through that cache cluster instead. Directory
listings are kept in --cache-dir/listings too (per access key), so a remount
lists nothing again within --metadata-ttl.

Files of a file:// source keep their owner and permission bits (without
write bits; the kernel enforces them): a 0600 file stays its owner's. Bucket
objects have neither, and show as --uid, --gid and --file-mode say (0444 by
default), as do a file:// source's files when one of those flags is given.

Runs in the foreground; Ctrl-C, SIGTERM or 'hoard umount MOUNTPOINT' unmount
it cleanly. MOUNTPOINT may be /dev/fd/N: a /dev/fuse descriptor that a
privileged parent opened and mounted (see fusefd).

Memory: GOMEMLIMIT defaults to 384MiB for a mount (set GOMEMLIMIT to change
it); the in-memory hot tier takes at most --hot-cache of it.`,
		Example: `  hoard mount s3://datasets/imagenet/ /mnt/imagenet --s3-endpoint https://s3.example.com
  hoard mount --etcd http://10.0.0.1:2379 s3://models/llama/ /mnt/model
  hoard mount file:///srv/data /mnt/data --cache-dir /var/cache/hoard --cache-size 50GiB`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(defaultMemoryLimit)
			}
			loc, err := ufs.ParseSource(args[0])
			if err != nil {
				return err
			}
			mountpoint := args[1]
			if err := checkMountpoint(mountpoint); err != nil {
				return err
			}
			opt, err := view.options()
			if err != nil {
				return err
			}
			cfg, err := cache.config()
			if err != nil {
				return err
			}
			cfg.Client = client.Config{HotBytes: int64(hot)}
			if loc.Scheme == "file" && !view.explicit(cmd.Flags()) {
				// Each file as its owner and mode say, not 0444 to all.
				// Listings of a local directory are cheap and are not
				// kept on disk: the files there hold no owners.
				opt.SourceOwners = true
			} else {
				opt.ListingDir = filepath.Join(cfg.CacheDir, "listings")
				opt.ListingScope = listingScope(cfg.S3)
			}
			return runMount(cmd.Context(), cmd, loc, mountpoint, opt, cfg, &mf)
		},
	}
	fs := cmd.Flags()
	fs.Var(&hot, "hot-cache", "in-memory hot tier (readahead lands here)")
	cache.add(fs)
	view.add(fs)
	mf.addMetrics(fs)
	return cmd
}

// viewFlags are the FUSE view's options.
type viewFlags struct {
	uid, gid          int
	fileMode, dirMode string
	metadataTTL       time.Duration
	negativeTTL       time.Duration
}

func (f *viewFlags) add(fs interface {
	IntVar(*int, string, int, string)
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}) {
	fs.IntVar(&f.uid, "uid", os.Getuid(), "owner of every file (file:// sources: each file's own owner, unless --uid, --gid or --file-mode is given)")
	fs.IntVar(&f.gid, "gid", os.Getgid(), "group of every file (file://: see --uid)")
	fs.StringVar(&f.fileMode, "file-mode", "0444", "permission bits of files, octal (file://: each file's own, without write bits; see --uid)")
	fs.StringVar(&f.dirMode, "dir-mode", "0555", "permission bits of directories (octal)")
	fs.DurationVar(&f.metadataTTL, "metadata-ttl", fuseview.DefaultMetadataTTL, "how long listings and stats are cached (new objects show up after it)")
	fs.DurationVar(&f.negativeTTL, "negative-ttl", fuseview.DefaultNegativeTTL, "how long a missing name stays missing")
}

// explicit reports whether the command line sets an owner or a file mode,
// which then applies to every file, also of a file:// source.
func (f *viewFlags) explicit(fs *pflag.FlagSet) bool {
	return fs.Changed("uid") || fs.Changed("gid") || fs.Changed("file-mode")
}

func (f *viewFlags) options() (fuseview.Options, error) {
	fm, err := strconv.ParseUint(f.fileMode, 8, 32)
	if err != nil || fm > 0o777 {
		return fuseview.Options{}, fmt.Errorf("--file-mode %q: want octal permission bits such as 0444", f.fileMode)
	}
	dm, err := strconv.ParseUint(f.dirMode, 8, 32)
	if err != nil || dm > 0o777 {
		return fuseview.Options{}, fmt.Errorf("--dir-mode %q: want octal permission bits such as 0555", f.dirMode)
	}
	if f.uid < 0 || f.gid < 0 {
		return fuseview.Options{}, errors.New("--uid and --gid must not be negative")
	}
	return fuseview.Options{
		UID: uint32(f.uid), GID: uint32(f.gid), FileMode: os.FileMode(fm), DirMode: os.FileMode(dm),
		MetadataTTL: f.metadataTTL, NegativeTTL: f.negativeTTL,
	}, nil
}

// listingScope names whose listings a mount keeps in the cache dir: those
// of the same access key (or, with ambient credentials, of the same user),
// so that a mount with other credentials never reads back a listing it
// might not be allowed to make. Only a hash of the key ID is kept.
func listingScope(s3 ufs.S3Config) string {
	id := s3.AccessKey
	for _, env := range []string{"AWS_ACCESS_KEY_ID", "MINIO_ACCESS_KEY", "MINIO_ROOT_USER"} {
		if id == "" {
			id = os.Getenv(env)
		}
	}
	if id == "" {
		id = fmt.Sprintf("ambient uid %d", os.Getuid())
	}
	sum := sha256.Sum256([]byte(s3.Endpoint + "\x00" + id))
	return hex.EncodeToString(sum[:])
}

// checkMountpoint says what is wrong with a mount point before anything is
// started. It asks mountinfo first (fusefd.Check): a stat(2) of a FUSE mount
// whose server hangs would hang the command.
func checkMountpoint(p string) error {
	if strings.HasPrefix(p, "/dev/fd/") {
		return nil
	}
	state, err := fusefd.Check(p)
	switch {
	case err == nil && state == fusefd.Broken:
		return fmt.Errorf("mount point %s is a broken mount (its server is gone): 'hoard umount %s' clears it", p, p)
	case err == nil && state != fusefd.NotMounted:
		return fmt.Errorf("mount point %s is busy: something is mounted there already ('hoard umount %s' to unmount it)", p, p)
	case err != nil:
		return fmt.Errorf("mount point %s: %w", p, err)
	}
	st, err := os.Stat(p) // nothing is mounted on p
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("mount point %s does not exist: create it first (mkdir -p %s)", p, p)
	case err != nil:
		return fmt.Errorf("mount point %s: %w", p, err)
	case !st.IsDir():
		return fmt.Errorf("mount point %s is not a directory", p)
	}
	return nil
}

func runMount(ctx context.Context, cmd *cobra.Command, loc ufs.Location, mountpoint string, opt fuseview.Options, cfg server.ClientConfig, mf *opsFlag) error {
	c, err := server.NewClient(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	prefix := loc.Prefix
	loc.Prefix = ""
	bucket, err := c.Open(ctx, loc, cfg.S3)
	if err != nil {
		return err
	}
	if err := probeBucket(ctx, bucket, prefix); err != nil {
		return err
	}
	if len(cfg.Etcd.Endpoints) > 0 {
		bucket = c.SharedListing(bucket, opt.MetadataTTL)
	}
	reads := &client.ReadStats{}
	root, err := fuseview.NewRoot(bucket, prefix, c.Counted(reads), opt)
	if err != nil {
		return err
	}
	collectors := []prometheus.Collector{fuseview.NewCollector(func() []fuseview.Volume {
		return []fuseview.Volume{{Name: mountpoint, View: root.Stats(), Reads: reads}}
	})}
	if c.Embedded != nil {
		collectors = append(collectors, server.NewWorkerCollector(c.Embedded))
	}
	if err := mf.serveNew(ctx, "mount", collectors...); err != nil {
		return err
	}
	srv, err := fuseview.Mount(mountpoint, root, fuseview.MountOptions{})
	if err != nil {
		return err
	}
	where := "cache " + cfg.CacheDir
	if len(cfg.Etcd.Endpoints) > 0 {
		where = "cache cluster " + strings.Join(cfg.Etcd.Endpoints, ",")
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "hoard: %s mounted on %s (%s); Ctrl-C to unmount\n", root.Name(), mountpoint, where)
	served := make(chan struct{})
	go func() { srv.Wait(); close(served) }()
	select {
	case <-served:
		fmt.Fprintf(cmd.ErrOrStderr(), "hoard: %s was unmounted; %s; %s\n", mountpoint, summary(c), viewSummary(root))
		return nil
	case <-ctx.Done():
	}
	uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fuseview.Unmount(uctx, srv, mountpoint); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "hoard: unmounted %s; %s; %s\n", mountpoint, summary(c), viewSummary(root))
	return nil
}

// viewSummary counts the view's metadata work.
func viewSummary(root *fuseview.Root) string {
	st := root.Stats()
	return fmt.Sprintf("metadata: %d lookups, %d HEADs, %d LIST pages; %d opens, %d reads",
		st.Lookups.Load(), st.Heads.Load(), st.ListPages.Load(), st.Opens.Load(), st.Reads.Load())
}

// summary says where a mount's pages came from, for its last log line.
func summary(c *server.Client) string {
	st := c.Stats()
	s := fmt.Sprintf("pages: %d from memory, %d joined, %d from workers, %d from the bucket directly",
		st.HotHits.Load(), st.Joined.Load(), st.LocalReads.Load()+st.RemoteReads.Load(), st.BucketReads.Load())
	if n := st.BypassedBytes.Load(); n > 0 {
		s += fmt.Sprintf("; %d bytes bypassed the cache", n)
	}
	if c.Embedded != nil {
		ws := c.Embedded.Worker.Stats()
		s += fmt.Sprintf("; cache: %d page hits, %d misses, %d GETs", ws.PageHits.Load(), ws.PageMisses.Load(), ws.Fetches.Load())
	}
	return s
}

// probeBucket checks the bucket (ufs.Probe) so that a missing bucket, wrong
// credentials or an unreachable endpoint fail the mount with a message that
// says what to fix, not every read.
func probeBucket(ctx context.Context, bucket ufs.UFS, prefix string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := ufs.Probe(ctx, bucket, prefix)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ufs.ErrNoSuchBucket):
		return fmt.Errorf("%s: the bucket does not exist (check the name and --s3-endpoint): %w", bucket.Source(), err)
	case errors.Is(err, ufs.ErrUnauthenticated):
		return fmt.Errorf("%s: the store does not accept the credentials: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN: %w", bucket.Source(), err)
	case errors.Is(err, ufs.ErrAccessDenied):
		return fmt.Errorf("%s: access denied: these credentials (or the instance role) may not list it: %w", bucket.Source(), err)
	case errors.Is(err, ufs.ErrUnavailable):
		return fmt.Errorf("%s: the store cannot be reached or is failing (check --s3-endpoint and --s3-insecure): %w", bucket.Source(), err)
	}
	return fmt.Errorf("%s: cannot list the bucket: %w", bucket.Source(), err)
}

func newUmountCmd() *cobra.Command {
	var lazy bool
	cmd := &cobra.Command{
		Use:   "umount MOUNTPOINT",
		Short: "Unmount a hoard mount",
		Long: `Unmount a hoard mount (the serving 'hoard mount' process then exits). With
--lazy the mount is detached even while files are open, and a broken mount
("Transport endpoint is not connected") is cleared. Without root, use
'fusermount3 -u MOUNTPOINT'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			state, err := fusefd.Check(args[0])
			if err == nil && state == fusefd.NotMounted {
				return fmt.Errorf("%s is not mounted", args[0])
			}
			if err := fusefd.Unmount(args[0], lazy || state == fusefd.Broken); err != nil {
				return fmt.Errorf("unmount %s: %w (files open? try --lazy)", args[0], err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&lazy, "lazy", false, "detach now even if files are open")
	return cmd
}
