package server

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"hoard.dev/hoard/cachecore/mtls"
)

// TestWorkerServesOnlyMutualTLS: a worker with mTLS answers clients holding a
// certificate of its CA, and nobody else: not plain HTTP, not TLS without a
// client certificate, not a certificate of another CA. A worker without TLS
// refuses to start unless InsecureDev.
func TestWorkerServesOnlyMutualTLS(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, other} {
		if err := mtls.Generate(d, 0); err != nil {
			t.Fatal(err)
		}
	}
	quiet := slog.New(slog.DiscardHandler)
	if _, err := StartWorker(context.Background(), WorkerConfig{
		CacheDir: t.TempDir(), Capacity: 64 << 20, Listen: "127.0.0.1:0", Logger: quiet,
	}); err == nil || !strings.Contains(err.Error(), "--tls-ca") {
		t.Fatalf("a worker without TLS started: %v", err)
	}
	serverTLS, err := mtls.WorkerFiles(dir).ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	w, err := StartWorker(context.Background(), WorkerConfig{
		CacheDir: t.TempDir(), Capacity: 64 << 20, Listen: "127.0.0.1:0", TLS: serverTLS, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })

	get := func(scheme string, c *tls.Config) (int, error) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c}}
		resp, err := hc.Get(scheme + "://" + w.Addr + "/healthz")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	good, err := mtls.ClientFiles(dir).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if code, err := get("https", good); err != nil || code != http.StatusOK {
		t.Fatalf("client of the CA: %d, %v", code, err)
	}
	if code, err := get("http", nil); err == nil && code == http.StatusOK {
		t.Error("plain HTTP was served")
	}
	noCert := good.Clone()
	noCert.Certificates = nil
	if _, err := get("https", noCert); err == nil {
		t.Error("a client without a certificate was served")
	}
	stranger, err := mtls.ClientFiles(other).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	stranger.RootCAs = good.RootCAs // it trusts the worker, but its own cert is of another CA
	if _, err := get("https", stranger); err == nil {
		t.Error("a client with a certificate of another CA was served")
	}
	// A worker certificate is not a client certificate.
	asWorker := good.Clone()
	wc, _ := tls.LoadX509KeyPair(mtls.WorkerFiles(dir).Cert, mtls.WorkerFiles(dir).Key)
	asWorker.Certificates = []tls.Certificate{wc}
	if _, err := get("https", asWorker); err == nil {
		t.Error("a worker's (server) certificate was accepted as a client's")
	}
}
