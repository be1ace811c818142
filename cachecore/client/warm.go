package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/cachecore/worker"
)

// warmChunksInFlight bounds the chunks of one object warmed at once.
const warmChunksInFlight = 4

// Warm makes the cache hold all of obj without moving its bytes here: each
// chunk's owner fetches what it lacks from the bucket. A chunk whose owner
// fails is warmed on the next worker in routing order. It returns the bytes
// the workers had to fetch (0 if obj was cached already).
func (c *Client) Warm(ctx context.Context, obj Object) (int64, error) {
	id := obj.ID()
	var fetched atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(warmChunksInFlight)
	for off := int64(0); off < obj.Size; off += c.cfg.ChunkSize {
		req := worker.Request{Source: obj.Source, Key: obj.Key, Version: obj.Version, Size: obj.Size, Creds: c.cfg.Credentials,
			Off: off, Len: min(c.cfg.ChunkSize, obj.Size-off)}
		chunk := off / c.cfg.ChunkSize
		g.Go(func() error {
			n, err := c.warmChunk(ctx, req, id.ChunkHash(chunk))
			fetched.Add(n)
			return err
		})
	}
	err := g.Wait()
	return fetched.Load(), err
}

func (c *Client) warmChunk(ctx context.Context, req worker.Request, hash uint64) (int64, error) {
	var lastErr error = errors.New("no live worker")
	for _, m := range c.route(hash) {
		n, err := c.warmAt(ctx, m, req)
		if err == nil {
			return n, nil
		}
		if errors.Is(err, ufs.ErrNotFound) || errors.Is(err, ufs.ErrVersionMismatch) || ctx.Err() != nil {
			return 0, err
		}
		lastErr = err
		c.suspects.Store(m.ID, time.Now().Add(c.cfg.SuspectFor))
	}
	return 0, fmt.Errorf("warm %s at %d: %w", req.Key, req.Off, lastErr)
}

// Cached returns how many bytes of obj the cache holds, asking each chunk's
// owner (the first worker in routing order that answers: the one reads
// would go to). It fetches nothing.
func (c *Client) Cached(ctx context.Context, obj Object) (int64, error) {
	id := obj.ID()
	var total int64
	for off := int64(0); off < obj.Size; off += c.cfg.ChunkSize {
		req := worker.Request{Source: obj.Source, Key: obj.Key, Version: obj.Version, Size: obj.Size, Creds: c.cfg.Credentials,
			Off: off, Len: min(c.cfg.ChunkSize, obj.Size-off)}
		n, err := c.cachedChunk(ctx, req, id.ChunkHash(off/c.cfg.ChunkSize))
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func (c *Client) cachedChunk(ctx context.Context, req worker.Request, hash uint64) (int64, error) {
	var lastErr error = errors.New("no live worker")
	for _, m := range c.route(hash) {
		n, err := c.cachedAt(ctx, m, req)
		if err == nil {
			return n, nil
		}
		if ctx.Err() != nil {
			return 0, err
		}
		lastErr = err
	}
	return 0, fmt.Errorf("how much of %s at %d is cached: %w", req.Key, req.Off, lastErr)
}

func (c *Client) cachedAt(ctx context.Context, m membership.Member, req worker.Request) (int64, error) {
	if c.local != nil && m.ID == c.local.ID() {
		return c.local.Cached(ctx, req)
	}
	url := c.workerURL(m, worker.CachedPath) + "?" + req.Query().Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	worker.SetCredentialHeaders(hreq.Header, req.Creds)
	resp, err := c.http.Do(hreq)
	if err != nil {
		return 0, fmt.Errorf("worker %s: %w", m.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return 0, workerStatusError(m, resp)
	}
	n, err := strconv.ParseInt(resp.Header.Get(worker.CachedHeader), 10, 64)
	if err != nil || n < 0 || n > req.Len {
		return 0, fmt.Errorf("worker %s: bad %s %q", m.ID, worker.CachedHeader, resp.Header.Get(worker.CachedHeader))
	}
	return n, nil
}

func (c *Client) warmAt(ctx context.Context, m membership.Member, req worker.Request) (int64, error) {
	if c.local != nil && m.ID == c.local.ID() {
		return c.local.Warm(ctx, req)
	}
	url := c.workerURL(m, worker.WarmPath) + "?" + req.Query().Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return 0, err
	}
	worker.SetCredentialHeaders(hreq.Header, req.Creds)
	resp, err := c.warmHTTP.Do(hreq)
	if err != nil {
		return 0, fmt.Errorf("worker %s: %w", m.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return 0, workerStatusError(m, resp)
	}
	n, _ := strconv.ParseInt(resp.Header.Get(worker.FetchedHeader), 10, 64)
	return n, nil
}
