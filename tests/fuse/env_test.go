// Package fuse_test mounts fuseview trees through the kernel, over a real
// MinIO (behind a counting proxy) and a real embedded cache, and checks what
// programs see: bytes, listings, attributes, errors. Keys MinIO refuses to
// store come from an in-memory bucket (fuseviewtest.Bucket) read through the
// same cache. The tests need root and /dev/fuse, and skip without them.
package fuse_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"hoard.dev/hoard/cachecore/server"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/fuseview"
	"hoard.dev/hoard/tests/testenv"
)

const MiB = 1 << 20

// env is a MinIO bucket behind a counting proxy, and an embedded cache that
// reads it through the proxy.
type env struct {
	minio  *testenv.MinIO
	proxy  *testenv.CountingProxy
	s3     ufs.S3Config // through the proxy
	cache  *server.Client
	bucket string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testenv.RequireFUSE(t)
	e := &env{minio: testenv.StartMinIO(t), bucket: "data"}
	e.minio.MakeBucket(t, e.bucket)
	e.proxy = testenv.NewCountingProxy(t, e.minio.Endpoint())
	e.s3 = e.minio.S3Config()
	e.s3.Endpoint = e.proxy.Endpoint()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := server.NewClient(ctx, server.ClientConfig{CacheDir: t.TempDir(), Capacity: 4 << 30, S3: e.s3})
	if err != nil {
		t.Fatalf("embedded cache: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	e.cache = c
	return e
}

// put stores data as key and returns its ETag.
func (e *env) put(t *testing.T, key string, data []byte) string {
	t.Helper()
	return e.minio.Put(t, e.bucket, key, data)
}

// putMany stores the objects of keys (each with its own content, see
// contentOf) with 32 uploads at a time.
func (e *env) putMany(t *testing.T, keys []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	work := make(chan string)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range 32 {
		wg.Go(func() {
			for k := range work {
				data := contentOf(k)
				_, err := e.minio.Client().PutObject(ctx, e.bucket, k, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("put %s: %w", k, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// contentOf is the content putMany stores under key.
func contentOf(key string) []byte { return []byte("content of " + key + "\n") }

// mount mounts bucket/prefix of the env's MinIO and returns the mountpoint.
func (e *env) mount(t *testing.T, prefix string, opt fuseview.Options) (string, *fuseview.Root) {
	t.Helper()
	return e.mountWith(t, prefix, opt, fuseview.MountOptions{})
}

// mountWith is mount with mount options.
func (e *env) mountWith(t *testing.T, prefix string, opt fuseview.Options, mo fuseview.MountOptions) (string, *fuseview.Root) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := e.cache.Open(ctx, ufs.Location{Scheme: "s3", Bucket: e.bucket}, e.s3)
	if err != nil {
		t.Fatal(err)
	}
	return mountTree(t, u, prefix, e.cache, opt, mo)
}

// mountTree mounts the tree of bucket/prefix under a temp dir; the test's
// cleanup unmounts it.
func mountTree(t *testing.T, bucket ufs.UFS, prefix string, r fuseview.Reader, opt fuseview.Options, mo fuseview.MountOptions) (string, *fuseview.Root) {
	t.Helper()
	root, err := fuseview.NewRoot(bucket, prefix, r, opt)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := fuseview.Mount(dir, root, mo)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	// Registered after TempDir: runs before the directory is removed.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := fuseview.Unmount(ctx, srv, dir); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir, root
}
