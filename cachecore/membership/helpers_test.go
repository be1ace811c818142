package membership

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"hoard.dev/hoard/tests/testenv"
)

const testTTL = 2 * time.Second // etcd's minimum with default election timing

// logRecorder is a slog destination that keeps every line for assertions and
// echoes it to the test log.
type logRecorder struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
	buf  []string
}

func newLogRecorder(t testing.TB) *logRecorder {
	r := &logRecorder{t: t}
	// Registered before anything that logs, so it runs after all of them
	// have been closed.
	t.Cleanup(func() {
		r.mu.Lock()
		r.done = true
		r.mu.Unlock()
	})
	return r
}

func (r *logRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	line := string(bytes.TrimRight(p, "\n"))
	r.buf = append(r.buf, line)
	if !r.done {
		r.t.Log(line)
	}
	return len(p), nil
}

func (r *logRecorder) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(r, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// count returns how many lines since mark contain s; mark comes from lines().
func (r *logRecorder) count(mark int, s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.buf[mark:] {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

func (r *logRecorder) lines() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.buf)
}

// env is one test's etcd, configuration and log.
type env struct {
	etcd *testenv.Etcd
	cfg  EtcdConfig
	log  *logRecorder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	checkNoLeaks(t)
	rec := newLogRecorder(t)
	e := testenv.StartEtcd(t)
	return &env{
		etcd: e,
		log:  rec,
		cfg: EtcdConfig{
			Endpoints:   e.Endpoints(),
			Cluster:     "test",
			DialTimeout: 2 * time.Second,
			TTL:         testTTL,
			Logger:      rec.logger(),
		},
	}
}

func (e *env) watch(t *testing.T) *EtcdWatcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := Watch(ctx, e.cfg)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func (e *env) register(t *testing.T, id string) *Registration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := Register(ctx, e.cfg, Member{ID: id, Addr: id + ".local:7070", Weight: 1, Capacity: 1 << 30})
	if err != nil {
		t.Fatalf("Register %s: %v", id, err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// kill stops r as a crash would: no more renewals, no revoke.
func (r *Registration) kill() {
	r.closeOnce.Do(func() {
		r.stop()
		_ = r.cli.Close()
	})
}

// waitFor waits until cond holds for src's view, or fails the test after
// timeout. It returns the view and how long it took.
func waitFor(t *testing.T, src Source, timeout time.Duration, what string, cond func(View) bool) (View, time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := src.Changed()
		v := src.Current()
		if cond(v) {
			return v, time.Since(start)
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		case <-deadline.C:
			t.Fatalf("after %s: not %s; view rev %d registered %v alive %v", timeout, what, v.Rev, ids(v.Registered), v.Alive)
		}
	}
}

func ids(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func registered(v View, id string) bool {
	for _, m := range v.Registered {
		if m.ID == id {
			return true
		}
	}
	return false
}

func allAlive(ids ...string) func(View) bool {
	return func(v View) bool {
		for _, id := range ids {
			if !registered(v, id) || !v.Alive[id] {
				return false
			}
		}
		return true
	}
}

// checkNoLeaks fails the test if, once everything the test made is closed,
// goroutines of this package or of an etcd client are still running.
func checkNoLeaks(t *testing.T) {
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked := leakedGoroutines()
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines still running after Close:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "leakedGoroutines") {
			continue // this one
		}
		if strings.Contains(g, "hoard.dev/hoard/cachecore/membership.") || strings.Contains(g, "go.etcd.io/etcd/client/v3.") {
			out = append(out, g)
		}
	}
	return out
}

func mustNot(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

// holdProxy forwards TCP connections to an etcd endpoint, and can hold back
// what etcd sends (Hold) while what the client sends still gets through: etcd
// renews the leases, but the client hears nothing, as when a starved
// process cannot read its answers.
type holdProxy struct {
	ln     net.Listener
	target string
	stop   chan struct{} // closed by close: nothing is held any more
	wg     sync.WaitGroup

	mu    sync.Mutex
	held  chan struct{} // closed when released; nil while not held
	conns []net.Conn
	done  bool
}

func newHoldProxy(t *testing.T, endpoint string) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	mustNot(t, err, "listen")
	p := &holdProxy{ln: ln, target: strings.TrimPrefix(endpoint, "http://"), stop: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Endpoint is the proxy's etcd URL.
func (p *holdProxy) Endpoint() string { return "http://" + p.ln.Addr().String() }

// Hold stops passing on etcd's answers until the returned function is called.
func (p *holdProxy) Hold() (release func()) {
	ch := make(chan struct{})
	p.mu.Lock()
	p.held = ch
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		if p.held == ch {
			p.held = nil
		}
		p.mu.Unlock()
		close(ch)
	}
}

func (p *holdProxy) wait() {
	p.mu.Lock()
	ch := p.held
	p.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-p.stop:
		}
	}
}

func (p *holdProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.done {
			p.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { // client to etcd: always passed on
			defer p.wg.Done()
			io.Copy(up, c)
			up.Close()
		}()
		go func() { // etcd to client: held back while held
			defer p.wg.Done()
			defer c.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := up.Read(buf)
				if n > 0 {
					p.wait()
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (p *holdProxy) close() {
	p.mu.Lock()
	p.done = true
	conns := p.conns
	p.mu.Unlock()
	close(p.stop)
	p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}
