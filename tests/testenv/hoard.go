package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/mtls"
)

var hoardBuild struct {
	once sync.Once
	path string
	err  error
}

// HoardBinary builds cmd/hoard once per test process and returns its path.
func HoardBinary(t testing.TB) string {
	t.Helper()
	hoardBuild.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "hoard-bin-")
		if err != nil {
			hoardBuild.err = err
			return
		}
		hoardBuild.path = filepath.Join(dir, "hoard")
		cmd := exec.Command("go", "build", "-o", hoardBuild.path, "./cmd/hoard")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			hoardBuild.err = fmt.Errorf("go build ./cmd/hoard: %v\n%s", err, out)
		}
	})
	if hoardBuild.err != nil {
		t.Fatalf("testenv: %v", hoardBuild.err)
	}
	return hoardBuild.path
}

// WorkerProc is a `hoard worker` running as its own process, so tests can
// kill -9 it.
type WorkerProc struct {
	ID       string
	Addr     string
	CacheDir string
	args     []string
	env      []string
	bin      string
	logs     *tailBuffer
	http     *http.Client
	scheme   string

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the current process has been reaped.
	exited chan struct{}
}

// WorkerOptions configure StartWorkerProc.
type WorkerOptions struct {
	ID       string
	Etcd     []string
	Cluster  string
	Capacity string // e.g. "256MiB"
	S3       *MinIO // endpoint and credentials (as environment, never flags)
	// S3Endpoint overrides S3's endpoint, e.g. a CountingProxy in front of it.
	S3Endpoint string
	// InsecureDev runs the worker without mutual TLS (plain HTTP); by
	// default it serves mTLS with the test's certificates (Certs).
	InsecureDev bool
	// Allow and Own are the worker's --allow-source and
	// --own-credentials-for; nil means "*" (any S3 source, with the
	// worker's own credentials when a client sends none).
	Allow, Own []string
	Extra      []string
}

// StartWorkerProc starts a worker process on a free loopback port and waits
// until it answers /healthz. It is killed when the test ends.
func StartWorkerProc(t testing.TB, o WorkerOptions) *WorkerProc {
	t.Helper()
	if o.Capacity == "" {
		o.Capacity = "1GiB"
	}
	if o.Cluster == "" {
		o.Cluster = "test"
	}
	w := &WorkerProc{ID: o.ID, Addr: freeAddr(t), CacheDir: t.TempDir(), bin: HoardBinary(t), logs: &tailBuffer{max: 64 << 10}}
	w.args = []string{"worker", "--id", o.ID, "--listen", w.Addr, "--cache-dir", w.CacheDir,
		"--capacity", o.Capacity, "--cluster", o.Cluster, "--log-level", "warn"}
	if len(o.Etcd) > 0 {
		w.args = append(w.args, "--etcd", strings.Join(o.Etcd, ","))
	}
	if o.InsecureDev {
		w.args = append(w.args, "--insecure-dev")
		w.http, w.scheme = workerHTTP(t, false), "http://"
	} else {
		f := mtls.WorkerFiles(Certs(t))
		w.args = append(w.args, "--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key)
		w.http, w.scheme = workerHTTP(t, true), "https://"
	}
	if o.Allow == nil {
		o.Allow = []string{"*"}
	}
	if o.Own == nil {
		o.Own = []string{"*"}
	}
	for _, p := range o.Allow {
		w.args = append(w.args, "--allow-source", p)
	}
	for _, p := range o.Own {
		w.args = append(w.args, "--own-credentials-for", p)
	}
	w.env = os.Environ()
	if o.S3 != nil {
		ep := o.S3Endpoint
		if ep == "" {
			ep = o.S3.Endpoint()
		}
		w.args = append(w.args, "--s3-endpoint", ep, "--s3-insecure", "--s3-path-style", "--s3-region", "us-east-1")
		w.env = append(w.env, "AWS_ACCESS_KEY_ID="+o.S3.AccessKey(), "AWS_SECRET_ACCESS_KEY="+o.S3.SecretKey())
	}
	w.args = append(w.args, o.Extra...)
	if err := w.start(); err != nil {
		t.Fatalf("testenv: start worker %s: %v\n%s", o.ID, err, w.logs)
	}
	t.Cleanup(func() { w.kill() })
	return w
}

func (w *WorkerProc) start() error {
	cmd := exec.Command(w.bin, w.args...)
	cmd.Env = w.env
	cmd.Stdout, cmd.Stderr = w.logs, w.logs
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	w.mu.Lock()
	w.cmd, w.exited = cmd, exited
	w.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("worker exited during start")
		default:
		}
		resp, err := w.http.Get(w.scheme + w.Addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("worker not healthy within 20s")
}

// Kill sends SIGKILL and waits until the process is gone.
func (w *WorkerProc) Kill(t testing.TB) {
	t.Helper()
	if !w.kill() {
		t.Fatalf("testenv: worker %s was not running", w.ID)
	}
}

func (w *WorkerProc) kill() bool {
	w.mu.Lock()
	cmd, exited := w.cmd, w.exited
	w.cmd = nil
	w.mu.Unlock()
	if cmd == nil {
		return false
	}
	cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
	}
	return true
}

// Restart starts the worker again with the same ID, port and cache dir.
func (w *WorkerProc) Restart(t testing.TB) {
	t.Helper()
	w.kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := w.start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: restart worker %s: %v\n%s", w.ID, err, w.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Pid is the current process's ID (0 if none), for benchmarks that count
// its CPU time.
func (w *WorkerProc) Pid() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cmd == nil || w.cmd.Process == nil {
		return 0
	}
	return w.cmd.Process.Pid
}

// URL is the worker's URL of path on its data port (https unless the
// worker runs with InsecureDev), and HTTP a client that it serves.
func (w *WorkerProc) URL(path string) string { return w.scheme + w.Addr + path }

// HTTP is a client the worker serves (the test's client certificate).
func (w *WorkerProc) HTTP() *http.Client { return w.http }

// Logs returns the tail of the worker's output.
func (w *WorkerProc) Logs() string { return w.logs.String() }

// Metric returns the value of a metric without labels other than worker,
// scraped from /metrics, or an error.
func (w *WorkerProc) Metric(ctx context.Context, name string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.scheme+w.Addr+"/metrics", nil)
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
			return 0, fmt.Errorf("metric %s: %q: %v", name, line, err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// FreeAddr returns a free 127.0.0.1 address.
func FreeAddr(t testing.TB) string { return freeAddr(t) }
