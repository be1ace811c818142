package preload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/ufs"
)

// Warmer caches one object: client.Client does.
type Warmer interface {
	Warm(ctx context.Context, obj client.Object) (fetched int64, err error)
}

// Progress is where a preload stands.
type Progress struct {
	Listed      bool  // the listing is complete: totals are final
	TotalFiles  int64 // objects found so far
	TotalBytes  int64
	DoneFiles   int64 // objects warmed
	DoneBytes   int64
	Fetched     int64 // bytes the cache had to fetch (the rest was cached)
	FailedFiles int64
}

// Options tune a preload.
type Options struct {
	// Parallel is the number of objects warmed at once (default 8).
	Parallel int
	// OnProgress is called after each object and when the listing ends; it
	// must be quick.
	OnProgress func(Progress)
	// MaxErrors stops the preload after that many failed objects (default 10).
	MaxErrors int
}

// Run warms every object under prefix in bucket.
func Run(ctx context.Context, bucket ufs.UFS, prefix string, w Warmer, opt Options) (Progress, error) {
	if opt.Parallel <= 0 {
		opt.Parallel = 8
	}
	if opt.MaxErrors <= 0 {
		opt.MaxErrors = 10
	}
	var (
		mu   sync.Mutex
		p    Progress
		errs []error
	)
	report := func(update func(*Progress)) {
		mu.Lock()
		update(&p)
		snap := p
		mu.Unlock()
		if opt.OnProgress != nil {
			opt.OnProgress(snap)
		}
	}
	objs := make(chan ufs.Object, 1024)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(objs)
		return list(gctx, bucket, prefix, func(o ufs.Object) error {
			report(func(p *Progress) { p.TotalFiles++; p.TotalBytes += o.Size })
			select {
			case objs <- o:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}, func() { report(func(p *Progress) { p.Listed = true }) })
	})
	var failed atomic.Int64
	for i := 0; i < opt.Parallel; i++ {
		g.Go(func() error {
			for o := range objs {
				obj := client.Object{Source: bucket.Source(), Key: o.Key, Version: o.Version, Size: o.Size}
				fetched, err := w.Warm(gctx, obj)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", o.Key, err))
					mu.Unlock()
					report(func(p *Progress) { p.FailedFiles++ })
					if failed.Add(1) >= int64(opt.MaxErrors) {
						return fmt.Errorf("stopped after %d failed objects", opt.MaxErrors)
					}
					continue
				}
				report(func(p *Progress) { p.DoneFiles++; p.DoneBytes += o.Size; p.Fetched += fetched })
			}
			return nil
		})
	}
	err := g.Wait()
	mu.Lock()
	defer mu.Unlock()
	if err == nil && len(errs) > 0 {
		err = fmt.Errorf("%d objects failed", len(errs))
	}
	if err != nil && len(errs) > 0 {
		err = fmt.Errorf("%w; first: %w", err, errors.Join(errs[:min(len(errs), 3)]...))
	}
	return p, err
}

// list walks every object under prefix, page by page.
func list(ctx context.Context, bucket ufs.UFS, prefix string, each func(ufs.Object) error, done func()) error {
	opt := ufs.ListOptions{Prefix: prefix}
	for {
		page, err := bucket.List(ctx, opt)
		if err != nil {
			return fmt.Errorf("list %s/%s: %w", bucket.Source(), prefix, err)
		}
		for _, o := range page.Objects {
			if o.Size == 0 {
				continue // directory markers and empty objects: nothing to cache
			}
			if err := each(o); err != nil {
				return err
			}
		}
		if page.Next == "" {
			done()
			return nil
		}
		opt.StartAfter = page.Next
	}
}
