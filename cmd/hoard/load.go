package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"hoard.dev/hoard/cachecore/preload"
	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/ufs"
)

// checkFlags are load --check's.
type checkFlags struct {
	check    bool
	wait     bool
	min      float64
	interval time.Duration
	timeout  time.Duration
}

func newLoadCmd() *cobra.Command {
	var (
		cache     cacheFlags
		parallel  int
		maxErrors int
		cf        checkFlags
	)
	cmd := &cobra.Command{
		Use:   "load SOURCE",
		Short: "Preload every object under a bucket prefix into the cache, or check how much of it is cached",
		Long: `Preload every object under SOURCE (s3://bucket/prefix/ or file:///dir) into
the cache before a job needs it. With --etcd each chunk's owner worker fetches
it from the bucket, so no bytes travel to this machine; without, the objects
go into the cache embedded in --cache-dir (the one 'hoard mount' uses).
Shows bytes, files, rate and ETA while it runs (on a terminal a progress
bar, elsewhere a line every 5 seconds, as a Kubernetes Job's log shows it)
and a summary at the end. It exits non-zero if any object failed.

Loading is resumable: what is cached already is not fetched again, so a
load that was interrupted (a Job's pod evicted) just runs again and fetches
the rest.

With --check it only reports how much of SOURCE the cache holds (bytes and
whole files), fetching nothing, and exits non-zero unless at least
--min-fraction of the bytes are cached; with --wait it checks every
--interval until they are (or --timeout passes): an init container that
holds a training pod until its dataset is warm.`,
		Example: `  hoard load --etcd http://10.0.0.1:2379 s3://datasets/imagenet/train/
  hoard load --cache-dir /var/cache/hoard file:///data/models/
  hoard load --check --wait --timeout 2h --etcd http://10.0.0.1:2379 s3://datasets/imagenet/train/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cf.min <= 0 || cf.min > 1 {
				return fmt.Errorf("--min-fraction %v: want a fraction in (0, 1]", cf.min)
			}
			if (cf.wait || cmd.Flags().Changed("min-fraction")) && !cf.check {
				return errors.New("--wait and --min-fraction go with --check")
			}
			ctx := cmd.Context()
			loc, err := ufs.ParseSource(args[0])
			if err != nil {
				return err
			}
			cfg, err := cache.config()
			if err != nil {
				return err
			}
			c, err := server.NewClient(ctx, cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			prefix := loc.Prefix
			loc.Prefix = ""
			bucket, err := c.Open(ctx, loc, cache.s3.config())
			if err != nil {
				return err
			}
			if cf.check {
				return checkWarm(cmd, bucket, prefix, c, cf, parallel)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "load: %s%s into %s\n", bucket.Source(), "/"+prefix, cacheName(cache))
			show := newLoadProgress(cmd.ErrOrStderr())
			start := time.Now()
			p, err := preload.Run(ctx, bucket, prefix, c, preload.Options{Parallel: parallel, MaxErrors: maxErrors, OnProgress: show.update})
			show.finish()
			d := time.Since(start)
			fmt.Fprintf(cmd.ErrOrStderr(), "loaded %d of %d files, %s in %s (%s/s); fetched %s from the bucket, %s were cached already; %d failed\n",
				p.DoneFiles, p.TotalFiles, humanize.IBytes(uint64(p.DoneBytes)), d.Round(time.Millisecond),
				humanize.IBytes(uint64(float64(p.DoneBytes)/max(d.Seconds(), 1e-3))),
				humanize.IBytes(uint64(p.Fetched)), humanize.IBytes(uint64(max(p.DoneBytes-p.Fetched, 0))), p.FailedFiles)
			return err
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&parallel, "parallel", 8, "objects loaded (or checked) at once")
	fs.IntVar(&maxErrors, "max-errors", 10, "stop after this many objects failed")
	fs.BoolVar(&cf.check, "check", false, "only report how much of SOURCE is cached; exit non-zero below --min-fraction")
	fs.BoolVar(&cf.wait, "wait", false, "with --check: check again every --interval until warm")
	fs.Float64Var(&cf.min, "min-fraction", 1, "with --check: the fraction of SOURCE's bytes that must be cached")
	fs.DurationVar(&cf.interval, "interval", 30*time.Second, "with --check --wait: time between checks")
	fs.DurationVar(&cf.timeout, "timeout", 0, "with --check --wait: give up after this long (0: never)")
	cache.add(fs)
	return cmd
}

// cacheName says which cache the flags name, for the log.
func cacheName(f cacheFlags) string {
	cfg, _ := f.config() // an error (TLS files) was reported when the client was made
	if len(cfg.Etcd.Endpoints) > 0 {
		return fmt.Sprintf("cache cluster %q (%s)", cfg.Etcd.Cluster, strings.Join(cfg.Etcd.Endpoints, ","))
	}
	return "the cache in " + cfg.CacheDir
}

// checkWarm reports how much of prefix is cached, until at least cf.min
// of it is when cf.wait.
func checkWarm(cmd *cobra.Command, bucket ufs.UFS, prefix string, c preload.Checker, cf checkFlags, parallel int) error {
	ctx := cmd.Context()
	if cf.wait && cf.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cf.timeout)
		defer cancel()
	}
	for {
		w, err := preload.Check(ctx, bucket, prefix, c, parallel)
		switch {
		case err != nil && ctx.Err() == nil:
			fmt.Fprintf(cmd.ErrOrStderr(), "check: %v\n", err)
		case err == nil:
			fmt.Fprintf(cmd.OutOrStdout(), "check: %s/%s: %.1f%% cached: %s of %s, %d of %d files whole\n",
				bucket.Source(), prefix, 100*w.Fraction(), humanize.IBytes(uint64(w.CachedBytes)),
				humanize.IBytes(uint64(w.Bytes)), w.CachedFiles, w.Files)
			if w.Fraction() >= cf.min {
				return nil
			}
			if !cf.wait {
				return fmt.Errorf("not warm: %.1f%% of %s/%s cached, want %.1f%%", 100*w.Fraction(), bucket.Source(), prefix, 100*cf.min)
			}
		}
		if !cf.wait {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not warm within --timeout %v: %w", cf.timeout, ctx.Err())
		case <-time.After(cf.interval):
		}
	}
}

// loadProgress draws a progress bar on a terminal, or a line every few
// seconds elsewhere (logs of a Kubernetes Job).
type loadProgress struct {
	mu    sync.Mutex
	w     io.Writer
	bar   *progressbar.ProgressBar
	last  time.Time
	start time.Time
	p     preload.Progress
}

func newLoadProgress(w io.Writer) *loadProgress {
	l := &loadProgress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		l.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("listing"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionFullWidth(),
		)
	}
	return l
}

func (l *loadProgress) update(p preload.Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	listedNow := p.Listed && !l.p.Listed
	l.p = p
	files := fmt.Sprintf("%d/%d files", p.DoneFiles, p.TotalFiles)
	if !p.Listed {
		files += " (listing)"
	}
	if l.bar != nil {
		if listedNow {
			l.bar.ChangeMax64(p.TotalBytes)
		}
		l.bar.Describe(files)
		l.bar.Set64(p.DoneBytes)
		return
	}
	if time.Since(l.last) < 5*time.Second {
		return
	}
	l.last = time.Now()
	rate := float64(p.DoneBytes) / max(time.Since(l.start).Seconds(), 1e-3)
	eta := "unknown"
	if p.Listed && rate > 0 {
		eta = time.Duration(float64(p.TotalBytes-p.DoneBytes) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(l.w, "load: %s, %s of %s, %s/s, ETA %s\n", files, humanize.IBytes(uint64(p.DoneBytes)),
		humanize.IBytes(uint64(p.TotalBytes)), humanize.IBytes(uint64(rate)), eta)
}

func (l *loadProgress) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bar != nil {
		l.bar.Finish()
		fmt.Fprintln(l.w)
	}
}
