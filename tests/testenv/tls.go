package testenv

import (
	"crypto/tls"
	"net/http"
	"os"
	"sync"
	"testing"

	"hoard.dev/hoard/cachecore/mtls"
)

var testCerts struct {
	once sync.Once
	dir  string
	err  error
}

// Certs returns a directory holding a CA and worker and client certificates
// (mtls.Generate) for the test processes' cache clusters: one per test
// binary (subtests and their parents share it), in the system's temp dir
// (a few small files, left for the OS to clean).
func Certs(t testing.TB) string {
	t.Helper()
	testCerts.once.Do(func() {
		testCerts.dir, testCerts.err = os.MkdirTemp("", "hoard-test-certs-")
		if testCerts.err == nil {
			testCerts.err = mtls.Generate(testCerts.dir, 0)
		}
	})
	if testCerts.err != nil {
		t.Fatalf("testenv: make certificates: %v", testCerts.err)
	}
	return testCerts.dir
}

// ClientTLS is the client side of mutual TLS with the test's workers.
func ClientTLS(t testing.TB) *tls.Config {
	t.Helper()
	c, err := mtls.ClientFiles(Certs(t)).ClientConfig()
	if err != nil {
		t.Fatalf("testenv: client TLS: %v", err)
	}
	return c
}

// workerHTTP is an HTTP client for a worker's health and metrics endpoints.
func workerHTTP(t testing.TB, secure bool) *http.Client {
	if !secure {
		return http.DefaultClient
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: ClientTLS(t)}}
}

// ClientTLSArgs are the flags that give a hoard client command (read, load,
// mount, mounter, status) the test's client certificate.
func ClientTLSArgs(t testing.TB) []string {
	f := mtls.ClientFiles(Certs(t))
	return []string{"--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key}
}
