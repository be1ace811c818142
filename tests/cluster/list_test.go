package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/ufs"
)

// TestSharedListing: many clients listing the same prefix through the
// cluster list the bucket once per page.
func TestSharedListing(t *testing.T) {
	e := newEnv(t, 3, "1GiB")
	ctx := context.Background()
	var up sync.WaitGroup
	for g := 0; g < 16; g++ {
		up.Add(1)
		go func() {
			defer up.Done()
			for i := g; i < 2500; i += 16 {
				e.minio.Put(t, bucket, fmt.Sprintf("ds/f-%05d", i), []byte{byte(i)})
			}
		}()
	}
	up.Wait()
	e.proxy.Reset()
	listAll := func(u ufs.UFS) (int, error) {
		n := 0
		opt := ufs.ListOptions{Prefix: "ds/", Delimiter: "/"}
		for {
			page, err := u.List(ctx, opt)
			if err != nil {
				return n, err
			}
			n += len(page.Objects)
			if page.Next == "" {
				return n, nil
			}
			opt.StartAfter = page.Next
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		c := e.client(t, nil)
		u, err := c.Sources.Open(ctx, objid.S3(e.proxy.Endpoint(), false, bucket))
		if err != nil {
			t.Fatal(err)
		}
		shared := c.SharedListing(u, time.Hour)
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := listAll(shared)
			if err == nil && n != 2500 {
				err = fmt.Errorf("listed %d objects, want 2500", n)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	lists := e.proxy.Requests("GET", "")
	t.Logf("8 clients listed 2500 objects with %d LIST requests on the bucket", lists)
	// MinIO pages at 1000 keys (the backend asks one more to work around a
	// MinIO quirk): 3 pages, listed once each.
	if lists != 3 {
		t.Errorf("%d LIST requests on the bucket for 8 clients, want 3 (one per page)", lists)
	}
}
