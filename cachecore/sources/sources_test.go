package sources

import (
	"context"
	"fmt"
	"testing"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/ufs"
)

// TestOpenedSourcesBounded rebuilds part of finding 4 of issue 11: every
// distinct source a client names used to open an S3 client that was never
// forgotten (1,500 requests: +1,500 fds, +540 MB). The registry keeps at
// most its bound; added sources stay.
func TestOpenedSourcesBounded(t *testing.T) {
	r := New(ufs.S3Config{AccessKey: "a", SecretKey: "b"}, true)
	local, err := ufs.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r.Add(local)
	for i := 0; i < 1500; i++ {
		src := objid.S3(fmt.Sprintf("127.0.0.1:%d", 1+i%60000), false, fmt.Sprintf("bucket-%d", i))
		if _, err := r.Open(context.Background(), src); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.Len(); n > DefaultMaxOpened+1 {
		t.Errorf("registry holds %d sources after 1500 distinct ones, want at most %d", n, DefaultMaxOpened+1)
	}
	if u, err := r.Open(context.Background(), local.Source()); err != nil || u != ufs.UFS(local) {
		t.Errorf("an added source was evicted: %v, %v", u, err)
	}
}

func TestSchemeDecidesTransport(t *testing.T) {
	r := New(ufs.S3Config{Insecure: false}, true)
	u, err := r.Open(context.Background(), objid.S3("127.0.0.1:9", false, "bkt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Source(); got != objid.S3("127.0.0.1:9", false, "bkt") {
		t.Errorf("opened %v, want the s3+http source asked for", got)
	}
	if _, err := r.Open(context.Background(), objid.File("/etc")); err == nil {
		t.Error("a file source was opened on request")
	}
}

// TestAddedHandlesKeepTheirIdentity: a handle added with one tenant's
// credentials is returned only for those credentials, one added without
// credentials only for requests without them; an S3 request with other
// credentials never gets either (the embedded mounter's worker used to read
// every tenant's misses with whichever handle was added last). Removing a
// handle leaves the others of the same identity.
func TestAddedHandlesKeepTheirIdentity(t *testing.T) {
	ctx := context.Background()
	r := New(ufs.S3Config{}, true)
	r.SetPolicy(Policy{}) // nothing opened on request
	open := func(creds ufs.Credentials) ufs.UFS {
		u, err := ufs.NewS3(ctx, "bkt", ufs.S3Config{Endpoint: "http://127.0.0.1:9", Region: "us-east-1", PathStyle: true}.WithCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	a := ufs.Credentials{AccessKey: "A", SecretKey: "a-secret"}
	b := ufs.Credentials{AccessKey: "B", SecretKey: "b-secret"}
	ua, ua2, uown := open(a), open(a), open(ufs.Credentials{})
	src := ua.Source()
	removeA := r.AddAs(ua, a)
	r.AddAs(ua2, a)
	r.Add(uown)

	if u, err := r.OpenAs(ctx, src, a); err != nil || u != ufs.UFS(ua2) {
		t.Errorf("A's credentials: %v, %v; want A's latest handle", u, err)
	}
	if u, err := r.Open(ctx, src); err != nil || u != ufs.UFS(uown) {
		t.Errorf("no credentials: %v, %v; want the handle added without", u, err)
	}
	if u, err := r.OpenAs(ctx, src, b); err == nil {
		t.Errorf("B's credentials got a handle (%p; A's %p %p, own %p)", u, ua, ua2, uown)
	}
	removeA()
	removeA() // twice is once
	if u, err := r.OpenAs(ctx, src, a); err != nil || u != ufs.UFS(ua2) {
		t.Errorf("after removing one of A's handles: %v, %v; want the other", u, err)
	}
	r2 := New(ufs.S3Config{}, true)
	r2.SetPolicy(Policy{})
	r2.AddAs(ua, a)
	if u, err := r2.Open(ctx, src); err == nil {
		t.Errorf("a request without credentials got A's handle %p", u)
	}
}
