package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// TestCountingProxyRules checks what counts as a GET-object request, against
// a plain HTTP backend.
func TestCountingProxyRules(t *testing.T) {
	var gotHost string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost = r.Host
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.RequestURI())
	}))
	t.Cleanup(backend.Close)
	p := NewCountingProxy(t, backend.URL)

	do := func(method, path string) string {
		t.Helper()
		req, _ := http.NewRequest(method, p.URL()+path, nil)
		req.Host = "signed.example:9000"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if gotHost != "signed.example:9000" {
			t.Errorf("backend saw Host %q, want the client's", gotHost)
		}
		return string(b)
	}
	if body := do("GET", "/b/dir/a%20b.bin?versionId=1"); body != "GET /b/dir/a%20b.bin?versionId=1" {
		t.Errorf("backend saw %q", body)
	}
	do("GET", "/b/dir/a%20b.bin")
	do("HEAD", "/b/dir/a%20b.bin")
	do("GET", "/b/?list-type=2&prefix=dir%2F")
	do("GET", "/b/dir/a%20b.bin?tagging")
	do("GET", "/b/other")
	do("PUT", "/b/other")

	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"GETs(dir/a b.bin)", p.GETs("dir/a b.bin"), 2},
		{"GETs(other)", p.GETs("other"), 1},
		{"TotalGETs", p.TotalGETs(), 3},
		{"Requests(HEAD, dir/a b.bin)", p.Requests("HEAD", "dir/a b.bin"), 1},
		{"Requests(GET, dir/a b.bin)", p.Requests("GET", "dir/a b.bin"), 3},
		{"Requests(GET, \"\")", p.Requests("GET", ""), 1},
		{"Total", p.Total(), 7},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	p.Reset()
	if p.Total() != 0 || p.TotalGETs() != 0 || p.GETs("other") != 0 {
		t.Errorf("counts not zero after Reset")
	}
}

// TestCountingProxyStreams checks that a response is forwarded while the
// backend is still writing it.
func TestCountingProxyStreams(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second")
	}))
	t.Cleanup(backend.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	p := NewCountingProxy(t, backend.URL)
	resp, err := http.Get(p.URL() + "/b/k")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 5)
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, buf); done <- err }()
	select {
	case err := <-done:
		if err != nil || string(buf) != "first" {
			t.Fatalf("read %q, %v", buf, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("first part not forwarded before the response ended")
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "second" {
		t.Errorf("rest = %q", rest)
	}
}

// TestCountingProxyMinIO checks that signed S3 requests pass through.
func TestCountingProxyMinIO(t *testing.T) {
	m := StartMinIO(t)
	m.MakeBucket(t, "bkt")
	want := m.PutRandom(t, "bkt", "x/y z+1.bin", 3<<20, 1)
	p := NewCountingProxy(t, m.Endpoint())
	c, err := minio.New(p.Endpoint(), &minio.Options{
		Creds:  credentials.NewStaticV4(m.AccessKey(), m.SecretKey(), ""),
		Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		o, err := c.GetObject(ctx, "bkt", "x/y z+1.bin", minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(o)
		o.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("get through proxy: %d bytes, %v", len(got), err)
		}
	}
	if _, err := c.PutObject(ctx, "bkt", "new", strings.NewReader("abc"), 3, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put through proxy: %v", err)
	}
	for o := range c.ListObjects(ctx, "bkt", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list through proxy: %v", o.Err)
		}
	}
	if got := p.Requests("GET", ""); got != 1 {
		t.Errorf("bucket GET count = %d, want 1 (one list page)", got)
	}
	if got := p.GETs("x/y z+1.bin"); got != 2 {
		t.Errorf("GETs = %d, want 2", got)
	}
	if got := p.TotalGETs(); got != 2 {
		t.Errorf("TotalGETs = %d, want 2 (PUT and LIST are not GET-object)", got)
	}
	if got := p.Requests("PUT", "new"); got != 1 {
		t.Errorf("PUT count = %d, want 1", got)
	}
}

// TestCountingProxyFaults: a fault answers GET-object requests with an S3
// error or holds them back; other requests pass; healing restores them.
func TestCountingProxyFaults(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "data")
	}))
	t.Cleanup(backend.Close)
	p := NewCountingProxy(t, backend.URL)
	get := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, p.URL()+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	p.SetFault(ProxyFault{Status: http.StatusServiceUnavailable, Code: "SlowDown"})
	if code, body := get("GET", "/b/k"); code != 503 || !strings.Contains(body, "<Code>SlowDown</Code>") {
		t.Errorf("GET under a SlowDown fault: %d %q", code, body)
	}
	if code, _ := get("HEAD", "/b/k"); code != 200 {
		t.Errorf("HEAD under a GET fault: %d, want 200", code)
	}
	if code, _ := get("GET", "/b/?list-type=2"); code != 200 {
		t.Errorf("LIST under a GET fault: %d, want 200", code)
	}
	if p.Faults() != 1 || p.GETs("k") != 1 {
		t.Errorf("faults %d, GETs %d; want 1 and 1", p.Faults(), p.GETs("k"))
	}
	p.SetFault(ProxyFault{Status: 503, Code: "SlowDown", Fraction: 0.5})
	failed := 0
	for range 200 {
		if code, _ := get("GET", "/b/k"); code == 503 {
			failed++
		}
	}
	if failed < 60 || failed > 140 {
		t.Errorf("%d of 200 GETs failed with Fraction 0.5", failed)
	}
	p.SetFault(ProxyFault{Delay: 300 * time.Millisecond})
	start := time.Now()
	if code, body := get("GET", "/b/k"); code != 200 || body != "data" {
		t.Errorf("delayed GET: %d %q", code, body)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("delayed GET answered after %v, want at least 300ms", d)
	}
	p.SetFault(ProxyFault{Flip: true})
	if code, body := get("GET", "/b/k"); code != 200 || body != "daua" {
		t.Errorf("GET with a flipped bit: %d %q, want %q", code, body, "daua")
	}
	p.SetFault(ProxyFault{})
	if code, _ := get("GET", "/b/k"); code != 200 {
		t.Errorf("GET after healing: %d", code)
	}
	if n := p.GETsByKey()["k"]; n != 204 {
		t.Errorf("GETsByKey()[k] = %d, want 204", n)
	}
}
