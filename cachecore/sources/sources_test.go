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
