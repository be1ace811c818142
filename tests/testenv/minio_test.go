package testenv

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestRandomBytes(t *testing.T) {
	a, b, c := RandomBytes(1000, 1), RandomBytes(1000, 1), RandomBytes(1000, 2)
	if !bytes.Equal(a, b) {
		t.Error("same seed gave different bytes")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same bytes")
	}
	if n := len(RandomBytes(0, 1)); n != 0 {
		t.Errorf("RandomBytes(0) has %d bytes", n)
	}
}

func getObject(t *testing.T, c *minio.Client, bucket, key string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(o)
}

func TestMinIOStopRestart(t *testing.T) {
	m := StartMinIO(t)
	m.MakeBucket(t, "bkt")
	want := m.PutRandom(t, "bkt", "dir/obj", 100<<10, 7)
	if etag := m.Put(t, "bkt", "small", []byte("hello")); etag != "5d41402abc4b2a76b9719d911017c592" {
		t.Errorf("Put returned ETag %q, want the MD5 of the data", etag)
	}
	got, err := getObject(t, m.Client(), "bkt", "dir/obj")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("get after put: %d bytes, %v", len(got), err)
	}

	m.Stop(t)
	if resp, err := http.Get(m.URL() + "/minio/health/live"); err == nil {
		resp.Body.Close()
		t.Fatalf("stopped MinIO still answers: %s", resp.Status)
	}

	start := time.Now()
	m.Restart(t)
	t.Logf("restart took %v", time.Since(start))
	got, err = getObject(t, m.Client(), "bkt", "dir/obj")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("get after restart: %d bytes, %v", len(got), err)
	}
	m.Delete(t, "bkt", "dir/obj")
	if _, err := getObject(t, m.Client(), "bkt", "dir/obj"); minio.ToErrorResponse(err).Code != "NoSuchKey" {
		t.Fatalf("get after delete: %v, want NoSuchKey", err)
	}
}

func TestMinIOTwoServers(t *testing.T) {
	a, b := StartMinIO(t), StartMinIO(t)
	if a.Endpoint() == b.Endpoint() || a.SecretKey() == b.SecretKey() || a.AccessKey() == b.AccessKey() {
		t.Fatalf("two servers share endpoint or credentials: %s %s", a.Endpoint(), b.Endpoint())
	}
	cfg := a.S3Config()
	if cfg.Endpoint != a.Endpoint() || cfg.AccessKey != a.AccessKey() || cfg.SecretKey != a.SecretKey() || !cfg.Insecure {
		t.Errorf("S3Config() = %v does not describe the server", cfg)
	}
}
