package ufs_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/tests/testenv"
)

func newS3(t *testing.T, bucket string, cfg ufs.S3Config) *ufs.S3 {
	t.Helper()
	s, err := ufs.NewS3(context.Background(), bucket, cfg)
	if err != nil {
		t.Fatalf("NewS3(%s, %v): %v", bucket, cfg, err)
	}
	return s
}

func TestS3(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "data")
	s := newS3(t, "data", m.S3Config())
	if want := "s3+http://" + m.Endpoint() + "/data"; s.Source().String() != want {
		t.Errorf("Source() = %q, want %q", s.Source(), want)
	}
	fix := fixture{u: s, put: func(key string, data []byte) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := m.Client().PutObject(ctx, "data", key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		return err
	}}
	testContract(t, fix)

	// A "directory marker" object whose key equals the listed prefix ends
	// with the delimiter but is a key, not a common prefix: resuming after it
	// must not skip what is under it.
	// MinIO also got max-keys wrong around such markers; see S3.List.
	for _, k := range []string{"mk/", "mk/a", "mk/b/c", "mk/c", "mk/d/", "mk/d/e", "mk/f"} {
		m.Put(t, "data", k, nil)
	}
	// The same at full pages: a marker, 1200 keys, a subdirectory.
	big := []string{"big/"}
	for i := range 1200 {
		big = append(big, fmt.Sprintf("big/k%04d", i))
	}
	putMany(t, fix, big)
	m.Put(t, "data", "big/sub/x", nil)
	bigAll := append(slices.Clone(big), "big/sub/x")
	big = append(big, "big/sub/")
	for _, tc := range []struct {
		prefix, delim string
		want          []string
	}{
		{"mk/", "/", []string{"mk/", "mk/a", "mk/b/", "mk/c", "mk/d/", "mk/f"}},
		{"mk/", "", []string{"mk/", "mk/a", "mk/b/c", "mk/c", "mk/d/", "mk/d/e", "mk/f"}},
		{"mk/d/", "/", []string{"mk/d/", "mk/d/e"}},
		{"", "/", []string{"big/", "mk/", "page/", "range/", "stat/", "tree/", "ver/"}},
		{"big/", "/", big},
		{"big/", "", bigAll},
	} {
		for _, maxKeys := range []int{1, 2, 3, 999, 1000} {
			if maxKeys < 10 && len(tc.want) > 100 {
				continue
			}
			pages := listAll(t, s, ufs.ListOptions{Prefix: tc.prefix, Delimiter: tc.delim, MaxKeys: maxKeys})
			if got := entries(pages); !slices.Equal(got, tc.want) {
				t.Errorf("list %q delimiter %q max %d: %q, want %q", tc.prefix, tc.delim, maxKeys, got, tc.want)
			}
		}
	}
}

func TestS3Errors(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "data")
	version := m.Put(t, "data", "k", []byte("hello"))

	wrongSecret := m.S3Config()
	wrongSecret.SecretKey = "wrong-secret-Zq8uP"
	wrongKey := m.S3Config()
	wrongKey.AccessKey = "nobody"
	noRegion := m.S3Config()
	noRegion.Region = "" // minio-go asks GET ?location first
	noRegionWrongSecret := wrongSecret
	noRegionWrongSecret.Region = ""

	for _, tc := range []struct {
		name   string
		bucket string
		cfg    ufs.S3Config
		want   error
	}{
		{"no such bucket", "nobucket", m.S3Config(), ufs.ErrNoSuchBucket},
		{"no such bucket, region lookup", "nobucket", noRegion, ufs.ErrNoSuchBucket},
		{"wrong secret", "data", wrongSecret, ufs.ErrAccessDenied},
		{"wrong secret, region lookup", "data", noRegionWrongSecret, ufs.ErrAccessDenied},
		{"unknown access key", "data", wrongKey, ufs.ErrAccessDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newS3(t, tc.bucket, tc.cfg)
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, tc.want) {
					t.Errorf("%s: %v, want %v", op, err, tc.want)
				}
				if err != nil && strings.Contains(err.Error(), tc.cfg.SecretKey) {
					t.Errorf("%s: error %q contains the secret key", op, err)
				}
				var resp minio.ErrorResponse
				if err != nil && !errors.As(err, &resp) {
					t.Errorf("%s: error %q does not wrap minio's ErrorResponse", op, err)
				}
			}
			_, err := s.Stat(ctxT(t), "k")
			check("stat", err)
			_, err = s.List(ctxT(t), ufs.ListOptions{})
			check("list", err)
			_, err = readAll(t, s, "k", version, 0, 5)
			check("read", err)
		})
	}
	// The region lookup must not hide a missing key behind the bucket check.
	if _, err := newS3(t, "data", noRegion).Stat(ctxT(t), "nokey"); !errors.Is(err, ufs.ErrNotFound) {
		t.Errorf("stat of a missing key with region lookup: %v, want ErrNotFound", err)
	}
}

// TestS3CountingProxy checks which requests each call makes, through the proxy
// other packages use to assert cache hits.
// TestProbe: one probe, and its error wraps the one sentinel that says what
// is wrong, which the CSI services and the CLI map to their answers.
func TestProbe(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "data")
	wrongSecret := m.S3Config()
	wrongSecret.SecretKey = "wrong-secret-Zq8uP"
	wrongKey := m.S3Config()
	wrongKey.AccessKey = "nobody"
	down := m.S3Config()
	down.Endpoint = "127.0.0.1:1"
	for _, tc := range []struct {
		name   string
		bucket string
		cfg    ufs.S3Config
		want   error // nil: the probe succeeds
		not    error // a sentinel the error must not wrap
	}{
		{"ok", "data", m.S3Config(), nil, nil},
		{"no such bucket", "nobucket", m.S3Config(), ufs.ErrNoSuchBucket, ufs.ErrAccessDenied},
		{"wrong secret", "data", wrongSecret, ufs.ErrUnauthenticated, ufs.ErrNoSuchBucket},
		{"unknown access key", "data", wrongKey, ufs.ErrUnauthenticated, ufs.ErrNoSuchBucket},
		{"store down", "data", down, ufs.ErrUnavailable, ufs.ErrAccessDenied},
	} {
		ctx, cancel := context.WithTimeout(ctxT(t), 10*time.Second)
		err := ufs.Probe(ctx, newS3(t, tc.bucket, tc.cfg), "some/prefix/")
		cancel()
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		case tc.not != nil && errors.Is(err, tc.not):
			t.Errorf("%s: %v also wraps %v", tc.name, err, tc.not)
		}
		if errors.Is(err, ufs.ErrUnauthenticated) && !errors.Is(err, ufs.ErrAccessDenied) {
			t.Errorf("%s: ErrUnauthenticated does not wrap ErrAccessDenied", tc.name)
		}
	}
	local, err := ufs.NewLocal(filepath.Join(t.TempDir(), "missing"))
	if err == nil {
		err = ufs.Probe(ctxT(t), local, "")
	}
	if !errors.Is(err, ufs.ErrNoSuchBucket) {
		t.Errorf("missing local dir: %v, want ErrNoSuchBucket", err)
	}
}

func TestS3CountingProxy(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "data")
	data := m.PutRandom(t, "data", "dir/a b+c.bin", 1<<20, 9)
	p := testenv.NewCountingProxy(t, m.Endpoint())
	cfg := m.S3Config()
	cfg.Endpoint = p.Endpoint()
	s := newS3(t, "data", cfg)

	o, err := s.Stat(ctxT(t), "dir/a b+c.bin")
	if err != nil {
		t.Fatal(err)
	}
	if p.Requests("HEAD", "dir/a b+c.bin") != 1 || p.TotalGETs() != 0 {
		t.Errorf("stat: %d HEAD and %d GETs, want 1 and 0", p.Requests("HEAD", "dir/a b+c.bin"), p.TotalGETs())
	}
	for i := range 2 {
		got, err := readAll(t, s, o.Key, o.Version, 1000, 5000)
		if err != nil || !bytes.Equal(got, data[1000:6000]) {
			t.Fatalf("read %d through proxy: %d bytes, %v", i, len(got), err)
		}
	}
	if _, err := readAll(t, s, o.Key, o.Version, 10, 0); err != nil {
		t.Fatal(err)
	}
	if got := p.GETs(o.Key); got != 2 {
		t.Errorf("GETs after two reads and an empty one = %d, want 2", got)
	}
	if _, err := s.List(ctxT(t), ufs.ListOptions{Prefix: "dir/", Delimiter: "/"}); err != nil {
		t.Fatal(err)
	}
	if p.TotalGETs() != 2 || p.Requests("GET", "") != 1 {
		t.Errorf("list: TotalGETs %d (want 2), bucket GETs %d (want 1)", p.TotalGETs(), p.Requests("GET", ""))
	}
	if _, err := readAll(t, s, o.Key, "0123456789abcdef0123456789abcdef", 0, 10); !errors.Is(err, ufs.ErrVersionMismatch) {
		t.Errorf("read with a stale version: %v, want ErrVersionMismatch", err)
	}
	if got := p.GETs(o.Key); got != 3 {
		t.Errorf("GETs after a mismatched read = %d, want 3 (one request, no retry)", got)
	}
	p.Reset()
	if p.Total() != 0 {
		t.Errorf("Total after Reset = %d", p.Total())
	}
}

// TestS3Outage checks that calls against a stopped server end when their
// context does, and that the same backend works again after a restart.
func TestS3Outage(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "data")
	version := m.Put(t, "data", "k", []byte("hello"))
	s := newS3(t, "data", m.S3Config())
	if _, err := s.Stat(ctxT(t), "k"); err != nil {
		t.Fatal(err)
	}
	m.Stop(t)

	calls := map[string]func(ctx context.Context) error{
		"stat": func(ctx context.Context) error { _, err := s.Stat(ctx, "k"); return err },
		"list": func(ctx context.Context) error { _, err := s.List(ctx, ufs.ListOptions{}); return err },
		"read": func(ctx context.Context) error { _, err := s.ReadRange(ctx, "k", version, 0, 5); return err },
	}
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		cancel()
		if err == nil || time.Since(start) > 5*time.Second {
			t.Errorf("%s during outage: %v after %v, want an error soon after the deadline", name, err, time.Since(start))
		}
	}
	// A cancelled context fails at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.List(ctx, ufs.ListOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("list with a cancelled context: %v", err)
	}

	m.Restart(t)
	got, err := readAll(t, s, "k", version, 0, 5)
	if err != nil || string(got) != "hello" {
		t.Errorf("read after restart: %q, %v", got, err)
	}
}

func TestS3Endpoint(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.MakeBucket(t, "data")
	m.Put(t, "data", "k", []byte("hello"))
	for _, ep := range []string{m.Endpoint(), "http://" + m.Endpoint(), "http://" + m.Endpoint() + "/"} {
		cfg := m.S3Config()
		cfg.Endpoint, cfg.Insecure, cfg.PathStyle = ep, ep == m.Endpoint(), false
		s := newS3(t, "data", cfg)
		if want := "s3+http://" + m.Endpoint() + "/data"; s.Source().String() != want {
			t.Errorf("endpoint %q: Source() = %q, want %q", ep, s.Source(), want)
		}
		if _, err := s.Stat(ctxT(t), "k"); err != nil {
			t.Errorf("endpoint %q: stat: %v", ep, err)
		}
	}
	for _, ep := range []string{"ftp://host", "host/path", "http://host/path", "http://user:pa55word@host", "user:pa55word@host:9000"} {
		cfg := m.S3Config()
		cfg.Endpoint = ep
		_, err := ufs.NewS3(context.Background(), "data", cfg)
		if err == nil {
			t.Errorf("endpoint %q: no error", ep)
		} else if strings.Contains(err.Error(), "pa55word") {
			t.Errorf("endpoint %q: error %q repeats the password", ep, err)
		}
	}
	if _, err := ufs.NewS3(context.Background(), "x", m.S3Config()); err == nil {
		t.Error("bucket name \"x\": no error")
	}
}

// TestS3CABundle checks that the CA bundle (S3Config.CABundle, else
// $AWS_CA_BUNDLE) is what makes a TLS endpoint trusted, against a minimal
// HTTPS stand-in that answers HEAD.
func TestS3CABundle(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Length", "5")
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes meant to fail
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := ufs.S3Config{Endpoint: srv.URL, Region: "us-east-1", AccessKey: "ak", SecretKey: "sk", PathStyle: true}

	stat := func(cfg ufs.S3Config) error {
		s, err := ufs.NewS3(context.Background(), "data", cfg)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = s.Stat(ctx, "k")
		return err
	}

	t.Setenv("AWS_CA_BUNDLE", "")
	// minio-go retries this error 10 times (about 3 s): it recognises
	// x509.UnknownAuthorityError, but crypto/tls wraps it since Go 1.20.
	if err := stat(base); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("stat without a CA bundle: %v, want a certificate error", err)
	}
	withCA := base
	withCA.CABundle = caFile
	if err := stat(withCA); err != nil {
		t.Errorf("stat with CABundle: %v", err)
	}
	t.Setenv("AWS_CA_BUNDLE", caFile)
	if err := stat(base); err != nil {
		t.Errorf("stat with AWS_CA_BUNDLE: %v", err)
	}
	t.Setenv("AWS_CA_BUNDLE", junk)
	if _, err := ufs.NewS3(context.Background(), "data", base); err == nil {
		t.Error("a CA bundle without certificates: no error")
	}
	missing := base
	missing.CABundle = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := ufs.NewS3(context.Background(), "data", missing); err == nil {
		t.Error("a missing CA bundle: no error")
	}
	// Plain HTTP needs no CA bundle, so a bad one does not matter.
	plain := base
	plain.Endpoint, plain.CABundle = "127.0.0.1:1", missing.CABundle
	if _, err := ufs.NewS3(context.Background(), "data", plain); err == nil {
		// Insecure is false, so this endpoint is https: the bundle is read.
		t.Error("a missing CA bundle for an https endpoint: no error")
	}
	plain.Insecure = true
	if _, err := ufs.NewS3(context.Background(), "data", plain); err != nil {
		t.Errorf("http endpoint with a missing CA bundle: %v", err)
	}
}
