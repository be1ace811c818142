package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cespare/xxhash/v2"

	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/cachecore/worker"
)

// SharedListing returns u with its listings served through the cluster: each
// listing page is routed to a worker that caches it for ttl, so a hundred
// nodes listing the same prefix list the bucket once. When no worker answers,
// or the bucket failed at the worker, it lists u itself. Stat and ReadRange go
// to u unchanged.
func (c *Client) SharedListing(u ufs.UFS, ttl time.Duration) ufs.UFS {
	return &sharedLister{UFS: u, c: c, ttl: ttl}
}

type sharedLister struct {
	ufs.UFS
	c   *Client
	ttl time.Duration
}

var _ ufs.UFS = (*sharedLister)(nil)

func (s *sharedLister) List(ctx context.Context, opt ufs.ListOptions) (ufs.ListPage, error) {
	req := worker.ListRequest{Source: s.Source(), Opt: opt, TTL: s.ttl, Creds: s.c.cfg.Credentials}
	d := xxhash.New()
	for _, f := range []string{req.Source.String(), opt.Prefix, opt.Delimiter, opt.StartAfter} {
		d.WriteString(f)
		d.Write([]byte{0})
	}
	for _, m := range s.c.route(d.Sum64()) {
		page, err := s.c.listAt(ctx, m, req)
		if err == nil {
			s.c.stats.SharedLists.Add(1)
			return page, nil
		}
		if errors.Is(err, errBucketAtWorker) || ctx.Err() != nil {
			break
		}
		s.c.suspects.Store(m.ID, time.Now().Add(s.c.cfg.SuspectFor))
	}
	return s.UFS.List(ctx, opt)
}

func (c *Client) listAt(ctx context.Context, m membership.Member, req worker.ListRequest) (ufs.ListPage, error) {
	if c.local != nil && m.ID == c.local.ID() {
		page, err := c.local.List(ctx, req)
		if err != nil {
			err = fmt.Errorf("%w: %v", errBucketAtWorker, err)
		}
		return page, err
	}
	url := c.workerURL(m, worker.ListPath) + "?" + req.Query().Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ufs.ListPage{}, err
	}
	worker.SetCredentialHeaders(hreq.Header, req.Creds)
	resp, err := c.http.Do(hreq)
	if err != nil {
		return ufs.ListPage{}, fmt.Errorf("worker %s: %w", m.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ufs.ListPage{}, workerStatusError(m, resp)
	}
	var page ufs.ListPage
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListResponse)).Decode(&page); err != nil {
		return ufs.ListPage{}, fmt.Errorf("worker %s: listing: %w", m.ID, err)
	}
	if n := len(page.Objects) + len(page.Prefixes); n > worker.MaxListKeys {
		return ufs.ListPage{}, fmt.Errorf("worker %s: a listing page of %d entries, more than %d", m.ID, n, worker.MaxListKeys)
	}
	return page, nil
}

// maxListResponse bounds a worker's answer to a listing request: a page of
// worker.MaxListKeys keys of worker.MaxKeyBytes, each escaped in JSON at
// six bytes a byte, with its version and metadata, fits.
const maxListResponse = 16 << 20
