package preload

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"hoard.dev/hoard/cachecore/client"
	"hoard.dev/hoard/cachecore/ufs"
)

// Checker says how much of an object the cache holds: client.Client does.
type Checker interface {
	Cached(ctx context.Context, obj client.Object) (int64, error)
}

// Warmth is how much of a prefix the cache holds.
type Warmth struct {
	Files       int64 // objects under the prefix (empty ones left out)
	Bytes       int64
	CachedFiles int64 // objects cached whole
	CachedBytes int64
}

// Fraction is the part of the prefix's bytes the cache holds; 1 for an
// empty prefix.
func (w Warmth) Fraction() float64 {
	if w.Bytes == 0 {
		return 1
	}
	return float64(w.CachedBytes) / float64(w.Bytes)
}

// Check lists every object under prefix in bucket and asks the cache how
// much of each it holds, parallel objects at a time (default 8). It reads
// no object bytes and fetches nothing.
func Check(ctx context.Context, bucket ufs.UFS, prefix string, c Checker, parallel int) (Warmth, error) {
	if parallel <= 0 {
		parallel = 8
	}
	var (
		mu sync.Mutex
		w  Warmth
	)
	objs := make(chan ufs.Object, 1024)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(objs)
		return list(gctx, bucket, prefix, func(o ufs.Object) error {
			select {
			case objs <- o:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}, func() {})
	})
	for range parallel {
		g.Go(func() error {
			for o := range objs {
				obj := client.Object{Source: bucket.Source(), Key: o.Key, Version: o.Version, Size: o.Size}
				n, err := c.Cached(gctx, obj)
				if err != nil {
					return fmt.Errorf("%s: %w", o.Key, err)
				}
				mu.Lock()
				w.Files++
				w.Bytes += o.Size
				w.CachedBytes += n
				if n == o.Size {
					w.CachedFiles++
				}
				mu.Unlock()
			}
			return nil
		})
	}
	err := g.Wait()
	return w, err
}
