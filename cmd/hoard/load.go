package main

import (
	"fmt"
	"io"
	"os"
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

func newLoadCmd() *cobra.Command {
	var (
		cache    cacheFlags
		parallel int
	)
	cmd := &cobra.Command{
		Use:   "load SOURCE",
		Short: "Preload every object under a bucket prefix into the cache",
		Long: `Preload every object under SOURCE (s3://bucket/prefix/ or file:///dir) into
the cache before a job needs it. With --etcd each chunk's owner worker fetches
it from the bucket, so no bytes travel to this machine; without, the objects
go into the cache embedded in --cache-dir (the one 'hoard mount' uses).
Shows bytes, files, rate and ETA while it runs and a summary at the end.`,
		Example: `  hoard load --etcd http://10.0.0.1:2379 s3://datasets/imagenet/train/
  hoard load --cache-dir /var/cache/hoard file:///data/models/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			loc, err := ufs.ParseSource(args[0])
			if err != nil {
				return err
			}
			c, err := server.NewClient(ctx, cache.config())
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
			show := newLoadProgress(cmd.ErrOrStderr())
			start := time.Now()
			p, err := preload.Run(ctx, bucket, prefix, c, preload.Options{Parallel: parallel, OnProgress: show.update})
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
	fs.IntVar(&parallel, "parallel", 8, "objects loaded at once")
	cache.add(fs)
	return cmd
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
