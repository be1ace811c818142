package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"hoard.dev/hoard/cachecore/ufs"
)

// MinIOBinEnv names the environment variable that points at a MinIO server
// binary.
const MinIOBinEnv = "HOARD_MINIO_BIN"

// MinIOVersion is the pinned MinIO server module version (see DESIGN.md).
const MinIOVersion = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// minioReadyTimeout bounds the wait for a starting server.
const minioReadyTimeout = 30 * time.Second

// MinIOBinary finds the MinIO server binary: $HOARD_MINIO_BIN, else
// CacheDir()/bin/minio, else minio on PATH.
func MinIOBinary() (string, error) {
	if p := os.Getenv(MinIOBinEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", MinIOBinEnv, p, err)
		}
		return p, nil
	}
	p := filepath.Join(CacheDir(), "bin", "minio")
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		return p, nil
	}
	p, err := exec.LookPath("minio")
	if err != nil {
		return "", fmt.Errorf("no MinIO server binary in $%s, %s or PATH (build it with GOBIN=%s go install %s)",
			MinIOBinEnv, filepath.Join(CacheDir(), "bin", "minio"), filepath.Join(CacheDir(), "bin"), MinIOVersion)
	}
	return p, nil
}

// MinIO is a MinIO server started for one test, listening on 127.0.0.1 (or
// the address given to StartMinIOOn) with
// its data in a temp dir and a random root user and password.
type MinIO struct {
	bin, dir          string
	command           func(name string, arg ...string) *exec.Cmd // runs the server; exec.Command by default
	certsDir          string                                     // with TLS: public.crt and private.key
	tlsClient         *tls.Config                                // with TLS: trusts the server's CA
	addr, consoleAddr string
	user, password    string
	client            *minio.Client

	mu   sync.Mutex
	proc *minioProc // nil while stopped
}

// minioProc is one run of the server.
type minioProc struct {
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // exit status, set before done is closed
}

var errAddrInUse = errors.New("address already in use")

// StartMinIO starts a MinIO server and waits (at most 30 s) until it is ready.
// The server is killed when the test ends. Without a binary the test is
// skipped (or fails, see RequireOrSkip).
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	return startMinIO(t, "127.0.0.1", nil)
}

// StartMinIOOn is StartMinIO listening on host, an address of this machine
// other than loopback: the host's address on a test bridge (tests/nodes),
// so that processes in test nodes reach it.
func StartMinIOOn(t testing.TB, host string) *MinIO {
	t.Helper()
	return startMinIO(t, host, nil)
}

// StartMinIOIn is StartMinIO run by command (a test node's Command, so
// that the server runs in the node's network namespace) listening on addr
// (host:port, the node's address and a port of the test's choosing; the
// console takes the next port).
func StartMinIOIn(t testing.TB, addr string, command func(name string, arg ...string) *exec.Cmd) *MinIO {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("testenv: MinIO address %q: %v", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p >= 65535 {
		t.Fatalf("testenv: MinIO address %q: want host:port", addr)
	}
	return startMinIOWith(t, minioStart{host: host, addr: addr, console: net.JoinHostPort(host, strconv.Itoa(p+1)), command: command})
}

// MinIOTLS is the server side of StartMinIOTLS: a certificate and key (PEM)
// for 127.0.0.1, and a pool that trusts it, for the test's own client.
type MinIOTLS struct {
	CertPEM, KeyPEM []byte
	Roots           *x509.CertPool
}

// StartMinIOTLS is StartMinIO serving HTTPS with the given certificate.
func StartMinIOTLS(t testing.TB, c MinIOTLS) *MinIO {
	t.Helper()
	return startMinIO(t, "127.0.0.1", &c)
}

func startMinIO(t testing.TB, host string, c *MinIOTLS) *MinIO {
	t.Helper()
	return startMinIOWith(t, minioStart{host: host, tls: c})
}

// minioStart says how to start a MinIO: on free ports of host, or on addr
// and console; by command or exec.Command; with TLS or not.
type minioStart struct {
	host, addr, console string
	command             func(name string, arg ...string) *exec.Cmd
	tls                 *MinIOTLS
}

func startMinIOWith(t testing.TB, o minioStart) *MinIO {
	t.Helper()
	bin, err := MinIOBinary()
	RequireOrSkip(t, "MinIO server binary", err)
	m := &MinIO{
		bin:      bin,
		dir:      t.TempDir(),
		user:     "hoard-" + randomHex(6),
		password: randomHex(20),
		command:  o.command,
	}
	if m.command == nil {
		m.command = exec.Command
	}
	host, c := o.host, o.tls
	if c != nil {
		m.certsDir = t.TempDir()
		m.tlsClient = &tls.Config{RootCAs: c.Roots}
		if err := os.WriteFile(filepath.Join(m.certsDir, "public.crt"), c.CertPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(m.certsDir, "private.key"), c.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Registered after TempDir, so it runs before the data dir is removed.
	t.Cleanup(m.kill)
	for attempt := 1; ; attempt++ {
		// The ports are free when picked but not reserved: another process
		// may take one before MinIO binds it; then pick again.
		if o.addr != "" {
			m.addr, m.consoleAddr = o.addr, o.console
		} else {
			m.addr, m.consoleAddr = freeAddrOn(t, host), freeAddrOn(t, host)
		}
		err = m.start()
		if err == nil {
			break
		}
		if !errors.Is(err, errAddrInUse) || attempt == 5 || o.addr != "" {
			t.Fatalf("start MinIO: %v", err)
		}
	}
	opts := &minio.Options{
		Creds:  credentials.NewStaticV4(m.user, m.password, ""),
		Region: "us-east-1",
	}
	if m.tlsClient != nil {
		opts.Secure = true
		opts.Transport = &http.Transport{TLSClientConfig: m.tlsClient}
	}
	m.client, err = minio.New(m.addr, opts)
	if err != nil {
		t.Fatalf("MinIO client: %v", err)
	}
	return m
}

// freeAddr returns 127.0.0.1:port for a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	return freeAddrOn(t, "127.0.0.1")
}

// freeAddrOn returns host:port for a port that was free a moment ago; see
// pickPort for why it is not simply the kernel's choice for port 0.
func freeAddrOn(t testing.TB, host string) string {
	t.Helper()
	port, err := pickPort(host)
	if err != nil {
		t.Fatalf("pick a free port: %v", err)
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Ports tests listen on are drawn at random from below the kernel's ephemeral
// range (net.ipv4.ip_local_port_range, 32768-60999 by default). A port the
// kernel hands out for port 0 is one it may, the moment it is closed, hand out
// again: to the next caller's port 0 in this process or to any process's
// outgoing connection (CI once failed so: one of an etcd test's six ports was
// in use when its member started). Below the range neither happens; two
// random picks, in one test or two, collide once in the range's size per
// pair (17,000), and the listen check catches a port already taken.
const (
	testPortLow  = 15000
	testPortHigh = 32000 // below the ephemeral range's default start
)

// pickPort returns a port on host that nobody listened on a moment ago.
func pickPort(host string) (int, error) {
	var lastErr error
	for range 200 {
		port := testPortLow + mrand.IntN(testPortHigh-testPortLow)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			lastErr = err
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port in [%d, %d) on %s after 200 tries: %w", testPortLow, testPortHigh, host, lastErr)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

// start runs the server on m's addresses and data dir and waits until it is
// ready. On failure the process is gone.
func (m *MinIO) start() error {
	args := []string{"server", "--address", m.addr, "--console-address", m.consoleAddr}
	if m.certsDir != "" {
		args = append(args, "--certs-dir", m.certsDir)
	}
	cmd := m.command(m.bin, append(args, m.dir)...)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MINIO_") { // a developer's MinIO settings must not leak in
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"MINIO_ROOT_USER="+m.user,
		"MINIO_ROOT_PASSWORD="+m.password,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	out := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	// If the test binary dies without running cleanups, so does MinIO.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", m.bin, err)
	}
	p := &minioProc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	m.mu.Lock()
	m.proc = p
	m.mu.Unlock()
	if err := m.waitReady(p); err != nil {
		m.kill()
		return err
	}
	return nil
}

func (m *MinIO) waitReady(p *minioProc) error {
	url := m.URL() + "/minio/health/ready"
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, TLSClientConfig: m.tlsClient},
	}
	deadline := time.Now().Add(minioReadyTimeout)
	for {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			out := p.out.String()
			if strings.Contains(out, "address already in use") {
				return fmt.Errorf("%w (%s or %s)", errAddrInUse, m.addr, m.consoleAddr)
			}
			return fmt.Errorf("MinIO on %s exited before it was ready (%v); its output ends:\n%s", m.addr, p.err, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("MinIO on %s not ready after %v; its output ends:\n%s", m.addr, minioReadyTimeout, p.out.String())
		}
	}
}

// kill kills the server, if running, and waits for it to exit.
func (m *MinIO) kill() {
	m.mu.Lock()
	p := m.proc
	m.proc = nil
	m.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill() // fails only if it has exited already
	<-p.done
}

// Stop kills the server (SIGKILL, as in a crash) and waits for it to exit, to
// simulate an outage. Restart brings it back.
func (m *MinIO) Stop(t testing.TB) {
	t.Helper()
	m.kill()
}

// Restart starts a stopped server again on the same addresses and data dir,
// or kills and restarts a running one.
func (m *MinIO) Restart(t testing.TB) {
	t.Helper()
	m.kill()
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = m.start(); !errors.Is(err, errAddrInUse) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart MinIO: %v", err)
	}
}

// Logs returns the end of the server's output.
func (m *MinIO) Logs() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return ""
	}
	return m.proc.out.String()
}

// Endpoint returns host:port of the S3 API.
func (m *MinIO) Endpoint() string { return m.addr }

// URL returns http://host:port (https:// with TLS) of the S3 API.
func (m *MinIO) URL() string {
	if m.tlsClient != nil {
		return "https://" + m.addr
	}
	return "http://" + m.addr
}

// AccessKey returns the root user.
func (m *MinIO) AccessKey() string { return m.user }

// SecretKey returns the root password.
func (m *MinIO) SecretKey() string { return m.password }

// Pid is the server process's ID (0 while stopped), for benchmarks that
// count its CPU time.
func (m *MinIO) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil || m.proc.cmd.Process == nil {
		return 0
	}
	return m.proc.cmd.Process.Pid
}

// DataDir returns the directory holding the server's data.
func (m *MinIO) DataDir() string { return m.dir }

// S3Config returns a configuration that reaches the server as root.
func (m *MinIO) S3Config() ufs.S3Config {
	return ufs.S3Config{
		Endpoint:  m.addr,
		Region:    "us-east-1",
		AccessKey: m.user,
		SecretKey: m.password,
		PathStyle: true,
		Insecure:  m.tlsClient == nil,
	}
}

// AssumeRole returns real credentials of the server limited by an IAM
// policy (STS AssumeRole with a session policy, a JSON document): a
// tenant's, for tests of what each tenant may read.
func (m *MinIO) AssumeRole(t testing.TB, policy string) ufs.Credentials {
	t.Helper()
	sts, err := credentials.NewSTSAssumeRole(m.URL(), credentials.STSAssumeRoleOptions{
		AccessKey: m.user, SecretKey: m.password, Policy: policy, DurationSeconds: 3600})
	if err != nil {
		t.Fatal(err)
	}
	cc := &credentials.CredContext{Client: &http.Client{Timeout: time.Minute,
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: m.tlsClient}}}
	v, err := sts.GetWithContext(cc)
	if err != nil {
		t.Fatalf("assume a role: %v", err)
	}
	return ufs.Credentials{AccessKey: v.AccessKeyID, SecretKey: v.SecretAccessKey, SessionToken: v.SessionToken}
}

// Client returns a minio-go client for setting up test data.
func (m *MinIO) Client() *minio.Client { return m.client }

func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

// MakeBucket creates a bucket.
func (m *MinIO) MakeBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := opContext()
	defer cancel()
	if err := m.client.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
}

// Put stores data as bucket/key and returns its ETag (without quotes), which
// is the version ufs.S3 reports.
func (m *MinIO) Put(t testing.TB, bucket, key string, data []byte) string {
	t.Helper()
	ctx, cancel := opContext()
	defer cancel()
	info, err := m.client.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	return strings.Trim(info.ETag, `"`)
}

// PutRandom stores size bytes of RandomBytes(size, seed) as bucket/key and
// returns them.
func (m *MinIO) PutRandom(t testing.TB, bucket, key string, size int64, seed uint64) []byte {
	t.Helper()
	data := RandomBytes(size, seed)
	m.Put(t, bucket, key, data)
	return data
}

// Delete removes bucket/key.
func (m *MinIO) Delete(t testing.TB, bucket, key string) {
	t.Helper()
	ctx, cancel := opContext()
	defer cancel()
	if err := m.client.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("delete %s/%s: %v", bucket, key, err)
	}
}

// RandomBytes returns size pseudo-random bytes, the same for the same seed.
func RandomBytes(size int64, seed uint64) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, size)
	_, _ = mrand.NewChaCha8(s).Read(b) // never fails
	return b
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
