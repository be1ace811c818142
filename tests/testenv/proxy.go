package testenv

import (
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// CountingProxy is a reverse proxy on 127.0.0.1 in front of an S3 endpoint that
// counts the requests passing through, so a test can assert what reached the
// bucket ("the second read made no GET"). It forwards the incoming Host header
// unchanged, as SigV4 signs it: point a client at Endpoint() and it talks to
// the backend as if directly. Bodies stream both ways.
//
// Requests are counted by method and object key, parsed from path-style URLs
// (/bucket/key; the key is "" for requests on a bucket or the service). Counts
// for the same key in different buckets add up.
type CountingProxy struct {
	addr   string
	target *url.URL
	srv    *http.Server
	tr     *http.Transport

	mu     sync.Mutex
	byReq  map[proxyReq]int64
	gets   map[string]int64 // GET-object requests by key
	nGets  int64
	nTotal int64
}

type proxyReq struct{ method, key string }

// NewCountingProxy starts a proxy in front of endpoint (host:port or
// http://host:port). It stops when the test ends.
func NewCountingProxy(t testing.TB, endpoint string) *CountingProxy {
	t.Helper()
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("counting proxy: target %q: %v", endpoint, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("counting proxy: listen: %v", err)
	}
	p := &CountingProxy{
		addr:   ln.Addr().String(),
		target: target,
		tr: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 64,
			DisableCompression:  true,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	p.Reset()
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // signed by SigV4
		},
		Transport:     p.tr,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.count(r)
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("counting proxy: serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

// Endpoint returns the proxy's host:port.
func (p *CountingProxy) Endpoint() string { return p.addr }

// URL returns http://host:port of the proxy.
func (p *CountingProxy) URL() string { return "http://" + p.addr }

// objectKey returns the key of a path-style request path.
func objectKey(path string) string {
	_, key, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return key
}

// isGetObject tells whether r reads object data: a GET of /bucket/key with no
// query parameter that selects a sub-resource (tagging, acl, attributes, ...).
func isGetObject(r *http.Request) bool {
	if r.Method != http.MethodGet || objectKey(r.URL.Path) == "" {
		return false
	}
	for k := range r.URL.Query() {
		if k != "versionId" && k != "partNumber" && !strings.HasPrefix(k, "response-") &&
			!strings.HasPrefix(k, "X-Amz-") {
			return false
		}
	}
	return true
}

func (p *CountingProxy) count(r *http.Request) {
	key := objectKey(r.URL.Path)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nTotal++
	p.byReq[proxyReq{r.Method, key}]++
	if isGetObject(r) {
		p.gets[key]++
		p.nGets++
	}
}

// GETs returns the number of GET-object requests for key.
func (p *CountingProxy) GETs(key string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets[key]
}

// TotalGETs returns the number of GET-object requests.
func (p *CountingProxy) TotalGETs() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nGets
}

// Requests returns the number of requests with method for key ("" for
// requests on a bucket or the service, such as listings).
func (p *CountingProxy) Requests(method, key string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byReq[proxyReq{method, key}]
}

// Total returns the number of requests of any kind.
func (p *CountingProxy) Total() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nTotal
}

// Reset sets all counts to zero.
func (p *CountingProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.byReq = map[proxyReq]int64{}
	p.gets = map[string]int64{}
	p.nGets, p.nTotal = 0, 0
}
