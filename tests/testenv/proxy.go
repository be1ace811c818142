package testenv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// CountingProxy is a reverse proxy on 127.0.0.1 (or another local address) in front of an S3 endpoint that
// counts the requests passing through, so a test can assert what reached the
// bucket ("the second read made no GET"). It forwards the incoming Host header
// unchanged, as SigV4 signs it: point a client at Endpoint() and it talks to
// the backend as if directly. Bodies stream both ways.
//
// Requests are counted by method and object key, parsed from path-style URLs
// (/bucket/key; the key is "" for requests on a bucket or the service). Counts
// for the same key in different buckets add up.
//
// SetFault makes it a faulty store: GET-object requests answered with an S3
// error (503 SlowDown) or held back before they are forwarded. Requests
// answered by a fault are counted like the others: they reached the "store".
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
	fault  ProxyFault
	rng    *rand.Rand
	faults int64 // requests answered by the fault
}

// ProxyFault is how a CountingProxy degrades GET-object requests. The zero
// value is a healthy store.
type ProxyFault struct {
	// Status, if not 0, answers a Fraction of GET-object requests with this
	// status and an S3 error document of Code (e.g. 503, "SlowDown").
	Status int
	Code   string
	// Fraction of GET-object requests that get Status (0 means all).
	Fraction float64
	// Delay holds every GET-object request this long before it is answered
	// or forwarded (a store slow to its first byte).
	Delay time.Duration
	// Flip flips one bit in the middle of every GET-object response's body
	// (a store, or a network, that damages bytes in flight).
	Flip bool
	// StallAfter, if not 0, sends this many bytes of every GET-object
	// response's body and then nothing more, holding the connection open
	// until the client gives up (a store that hangs mid-transfer).
	StallAfter int64
}

type proxyReq struct{ method, key string }

// NewCountingProxy starts a proxy in front of endpoint (host:port or
// http://host:port). It stops when the test ends.
func NewCountingProxy(t testing.TB, endpoint string) *CountingProxy {
	t.Helper()
	return NewCountingProxyOn(t, "127.0.0.1", endpoint)
}

// NewCountingProxyOn is NewCountingProxy listening on host, an address of
// this machine (the host's address on a test bridge, so that processes in
// test nodes reach it).
func NewCountingProxyOn(t testing.TB, host, endpoint string) *CountingProxy {
	t.Helper()
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("counting proxy: target %q: %v", endpoint, err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("counting proxy: listen: %v", err)
	}
	p := &CountingProxy{
		addr:   ln.Addr().String(),
		target: target,
		rng:    rand.New(rand.NewPCG(1, 2)),
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
			f, fail := p.count(r)
			if f.Delay > 0 {
				select {
				case <-time.After(f.Delay):
				case <-r.Context().Done():
					return
				}
			}
			if fail {
				writeS3Error(w, r, f)
				return
			}
			if f.Flip && isGetObject(r) {
				w = &flipWriter{ResponseWriter: w}
			}
			if f.StallAfter > 0 && isGetObject(r) {
				w = &stallWriter{ResponseWriter: w, left: f.StallAfter, gone: r.Context().Done()}
			}
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

// count counts r and returns the fault it gets (none unless it reads an
// object) and whether it is answered with the fault's error.
func (p *CountingProxy) count(r *http.Request) (ProxyFault, bool) {
	key := objectKey(r.URL.Path)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nTotal++
	p.byReq[proxyReq{r.Method, key}]++
	if !isGetObject(r) {
		return ProxyFault{}, false
	}
	p.gets[key]++
	p.nGets++
	f := p.fault
	fail := f.Status != 0 && (f.Fraction <= 0 || p.rng.Float64() < f.Fraction)
	if fail {
		p.faults++
	}
	return f, fail
}

// flipWriter flips one bit of a response body, in its middle (by its
// Content-Length; the first byte without one).
type flipWriter struct {
	http.ResponseWriter
	at, seen int64
	done     bool
}

func (f *flipWriter) WriteHeader(code int) {
	if n := f.Header().Get("Content-Length"); n != "" {
		var v int64
		fmt.Sscan(n, &v)
		f.at = v / 2
	}
	f.ResponseWriter.WriteHeader(code)
}

func (f *flipWriter) Write(p []byte) (int, error) {
	if !f.done && f.at >= f.seen && f.at < f.seen+int64(len(p)) {
		q := append([]byte(nil), p...)
		q[f.at-f.seen] ^= 0x01
		p, f.done = q, true
	}
	f.seen += int64(len(p))
	return f.ResponseWriter.Write(p)
}

// stallWriter passes the first bytes of a response body on, then holds
// every write until the client has gone.
type stallWriter struct {
	http.ResponseWriter
	left int64
	gone <-chan struct{}
}

// Unwrap lets the proxy's flushes reach the connection.
func (s *stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *stallWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > s.left {
		n, err := s.ResponseWriter.Write(p[:s.left])
		s.left -= int64(n)
		if err != nil {
			return n, err
		}
		http.NewResponseController(s.ResponseWriter).Flush()
		<-s.gone
		return n, errors.New("test proxy: stalled, and the client went away")
	}
	n, err := s.ResponseWriter.Write(p)
	s.left -= int64(n)
	return n, err
}

// writeS3Error answers r the way S3 answers a request it refuses.
func writeS3Error(w http.ResponseWriter, r *http.Request, f ProxyFault) {
	w.Header().Set("Content-Type", "application/xml")
	if f.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(f.Status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>injected by the test proxy</Message><Resource>%s</Resource><RequestId>testproxy</RequestId></Error>`,
		f.Code, r.URL.Path)
}

// SetFault makes the proxy answer GET-object requests as f says, from now
// on; SetFault(ProxyFault{}) heals it.
func (p *CountingProxy) SetFault(f ProxyFault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
}

// Faults returns how many requests the fault answered since the last Reset.
func (p *CountingProxy) Faults() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults
}

// GETsByKey returns the GET-object requests of every key since the last
// Reset.
func (p *CountingProxy) GETsByKey() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.gets))
	for k, v := range p.gets {
		out[k] = v
	}
	return out
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
	p.nGets, p.nTotal, p.faults = 0, 0, 0
}
