// Package csi_test runs hoard's CSI node service the way a node runs it: the
// real hoard binary as two processes, the node plugin ('hoard csi --mode
// node') and the mounter ('hoard mounter'), over real gRPC on Unix
// sockets, with real FUSE mounts and a real MinIO. Tests kill either process
// with SIGKILL and check what a reader of the mounts sees. They need root and
// /dev/fuse, and skip without them (fail with HOARD_REQUIRE_ALL=1).
package csi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"hoard.dev/hoard/node/mounter"
	"hoard.dev/hoard/tests/testenv"
)

const MiB = 1 << 20

// proc is a hoard process the test can kill -9 and start again. Its whole
// output goes to a file, so that tests can scan all of it (for secrets).
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	log  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func startProc(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, bin: testenv.HoardBinary(t), args: args, env: env,
		log: filepath.Join(t.TempDir(), name+".log")}
	if err := p.start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(p.stop)
	return p
}

func (p *proc) start() error {
	out, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "=== start %s %s\n", p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		out.Close()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	return nil
}

// kill sends SIGKILL and waits (10 s at most) until the process is reaped.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	if !p.signal(syscall.SIGKILL, 10*time.Second) {
		t.Fatalf("%s was not running", p.name)
	}
}

// restart starts the process again with the same arguments.
func (p *proc) restart(t testing.TB) {
	t.Helper()
	p.signal(syscall.SIGKILL, 10*time.Second)
	if err := p.start(); err != nil {
		t.Fatalf("restart %s: %v", p.name, err)
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 5 s.
func (p *proc) stop() {
	if !p.signal(syscall.SIGTERM, 5*time.Second) {
		return
	}
	p.signal(syscall.SIGKILL, 10*time.Second)
}

// signal sends sig and waits up to d for the exit; false if not running.
func (p *proc) signal(sig syscall.Signal, d time.Duration) bool {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
		p.mu.Lock()
		if p.cmd == cmd {
			p.cmd = nil
		}
		p.mu.Unlock()
	case <-time.After(d):
	}
	return true
}

func (p *proc) logs() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// env is one node: MinIO with a bucket, a mounter and a node plugin, and a
// gRPC client of the plugin.
type env struct {
	t      *testing.T
	root   string // short: socket paths must fit in 108 bytes
	minio  *testenv.MinIO
	bucket string

	mounterSock, csiSock, stateDir string
	mounter, plugin                *proc
	mc                             *mounter.Client

	conn     *grpc.ClientConn
	node     csi.NodeClient
	identity csi.IdentityClient
}

type envOptions struct {
	// pluginArgs are added to the plugin's command line.
	pluginArgs []string
	// mounterArgs are added to the mounter's command line.
	mounterArgs []string
	// mode is the plugin's --mode (default node).
	mode string
	// root, if set, is the directory to work in (made by the caller).
	root string
	// minio, if set, is the store to use (else one is started).
	minio *testenv.MinIO
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	testenv.RequireFUSE(t)
	e := &env{t: t, minio: o.minio, bucket: "data", root: o.root}
	if e.minio == nil {
		e.minio = testenv.StartMinIO(t)
	}
	e.minio.MakeBucket(t, e.bucket)
	if e.root == "" {
		e.root = shortTempDir(t)
	}
	e.mounterSock = filepath.Join(e.root, "mounter.sock")
	e.csiSock = filepath.Join(e.root, "csi.sock")
	e.stateDir = filepath.Join(e.root, "state")
	e.mc = &mounter.Client{Socket: e.mounterSock}

	// No S3 credentials in either environment: the volumes' secrets must
	// be what reaches the bucket.
	procEnv := cleanEnv()
	margs := append(mounterCommand(t), "--socket", e.mounterSock,
		"--cache-dir", filepath.Join(e.root, "cache"), "--cache-size", "1GiB", "--log-level", "debug")
	margs = append(margs, o.mounterArgs...)
	e.mounter = startProc(t, "mounter", procEnv, margs...)
	e.waitMounter()
	mode := o.mode
	if mode == "" {
		mode = "node"
	}
	keyFile := filepath.Join(e.root, "volume-id-key")
	if err := os.WriteFile(keyFile, []byte("csi-tests-volume-id-key-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"csi", "--mode", mode, "--endpoint", "unix://" + e.csiSock, "--node-id", "test-node",
		"--mounter-socket", e.mounterSock, "--state-dir", e.stateDir, "--restore-interval", "1s",
		"--volume-id-key-file", keyFile, "--kubelet-dir", e.root, "--log-level", "debug"}, o.pluginArgs...)
	e.plugin = startProc(t, "plugin", procEnv, args...)
	e.waitPlugin()
	t.Cleanup(func() {
		if e.conn != nil {
			e.conn.Close()
		}
	})
	// Runs before the processes are stopped (cleanups run last first):
	// every test ends with the secret absent from both logs, and a failed
	// one shows what the processes said.
	t.Cleanup(func() {
		e.checkNoSecrets(e.minio.SecretKey())
		if t.Failed() {
			t.Logf("plugin log (tail):\n%s\nmounter log (tail):\n%s", tail(e.plugin.logs()), tail(e.mounter.logs()))
		}
	})
	return e
}

// mounterCommand is the mounter's subcommand.
func mounterCommand(testing.TB) []string { return []string{"mounter"} }

// shortTempDir makes a temp dir with a short path, removed (after every
// mount under it) when the test ends.
func shortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hcsi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sweepMounts(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// cleanEnv is the test's environment without S3 credentials.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_ACCESS") || strings.HasPrefix(k, "AWS_SECRET") || strings.HasPrefix(k, "AWS_SESSION") ||
			strings.HasPrefix(k, "MINIO_") || k == "GOMEMLIMIT" {
			continue
		}
		out = append(out, kv)
	}
	// Nor from files or an instance role, whatever this machine has.
	return append(out, "AWS_SHARED_CREDENTIALS_FILE=/nonexistent", "AWS_CONFIG_FILE=/nonexistent",
		"AWS_EC2_METADATA_DISABLED=true")
}

func (e *env) waitMounter() {
	e.t.Helper()
	testenv.Eventually(e.t, 20*time.Second, "mounter answers", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := e.mc.Ping(ctx)
		return err
	})
}

func (e *env) waitPlugin() {
	e.t.Helper()
	if e.conn != nil {
		e.conn.Close()
	}
	conn, err := grpc.NewClient("unix://"+e.csiSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.conn, e.node, e.identity = conn, csi.NewNodeClient(conn), csi.NewIdentityClient(conn)
	testenv.Eventually(e.t, 20*time.Second, "plugin ready", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := e.identity.Probe(ctx, &csi.ProbeRequest{})
		if err != nil {
			return err
		}
		if !r.GetReady().GetValue() {
			return errors.New("not ready")
		}
		return nil
	})
}

// restartPlugin kills the plugin with SIGKILL and starts it again.
func (e *env) restartPlugin() {
	e.t.Helper()
	e.plugin.kill(e.t)
	e.plugin.restart(e.t)
	e.waitPlugin()
}

// checkNoSecrets fails the test if a secret shows in either process's log.
func (e *env) checkNoSecrets(secrets ...string) {
	e.t.Helper()
	for _, p := range []*proc{e.mounter, e.plugin} {
		if p == nil {
			continue
		}
		logs := p.logs()
		for _, s := range secrets {
			if s != "" && strings.Contains(logs, s) {
				e.t.Errorf("%s's log contains a secret (%d bytes of log)", p.name, len(logs))
			}
		}
	}
}

func (e *env) secrets() map[string]string {
	return map[string]string{"accessKeyID": e.minio.AccessKey(), "secretAccessKey": e.minio.SecretKey()}
}

func (e *env) volumeContext(prefix string) map[string]string {
	return map[string]string{
		"bucket": e.bucket, "prefix": prefix, "endpoint": e.minio.URL(),
		"region": "us-east-1", "pathStyle": "true",
	}
}

func mountCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

var readerCap = mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)

func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

func (e *env) stage(id, staging string, vctx, secrets map[string]string) error {
	ctx, cancel := callCtx()
	defer cancel()
	_, err := e.node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
		VolumeId: id, StagingTargetPath: staging, VolumeCapability: readerCap,
		VolumeContext: vctx, Secrets: secrets,
	})
	return err
}

func (e *env) mustStage(id, staging, prefix string) {
	e.t.Helper()
	if err := os.MkdirAll(staging, 0o750); err != nil {
		e.t.Fatal(err)
	}
	if err := e.stage(id, staging, e.volumeContext(prefix), e.secrets()); err != nil {
		e.t.Fatalf("NodeStageVolume %s: %v", id, err)
	}
}

func (e *env) publish(id, staging, target string) error {
	ctx, cancel := callCtx()
	defer cancel()
	_, err := e.node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId: id, StagingTargetPath: staging, TargetPath: target, VolumeCapability: readerCap,
		Readonly: true, VolumeContext: e.volumeContext(""),
	})
	return err
}

func (e *env) mustPublish(id, staging, target string) {
	e.t.Helper()
	if err := e.publish(id, staging, target); err != nil {
		e.t.Fatalf("NodePublishVolume %s on %s: %v", id, target, err)
	}
}

func (e *env) unpublish(id, target string) error {
	ctx, cancel := callCtx()
	defer cancel()
	_, err := e.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
	return err
}

func (e *env) unstage(id, staging string) error {
	ctx, cancel := callCtx()
	defer cancel()
	_, err := e.node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging})
	return err
}

func (e *env) stats(id, path string) (*csi.NodeGetVolumeStatsResponse, error) {
	ctx, cancel := callCtx()
	defer cancel()
	return e.node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: path})
}

func (e *env) list() *mounter.Response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := e.mc.List(ctx)
	if err != nil {
		e.t.Fatalf("mounter list: %v", err)
	}
	return r
}

// readFile reads a file on a mount in a goroutine, so that a mount whose
// server hangs fails the test instead of hanging it.
func readFile(p string) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := os.ReadFile(p)
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-time.After(20 * time.Second):
		return nil, fmt.Errorf("read %s: no answer in 20 s", p)
	}
}

// expectContent fails the test unless p reads exactly want.
func expectContent(t testing.TB, p string, want []byte) {
	t.Helper()
	got, err := readFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %s: %d bytes, not the %d bytes written", p, len(got), len(want))
	}
}

// mountEntry is one line of /proc/self/mountinfo, as much as tests need.
type mountEntry struct {
	id         int
	device     string
	mountPoint string
	options    string
	fsType     string
	optional   []string
}

func mounts(t testing.TB) []mountEntry {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []mountEntry
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 7 || sep < 6 || sep+1 >= len(f) {
			continue
		}
		id, _ := strconv.Atoi(f[0])
		out = append(out, mountEntry{id: id, device: f[2], mountPoint: f[4], options: f[5], fsType: f[sep+1], optional: f[6:sep]})
	}
	return out
}

// stackOn returns the mounts on p, bottom first.
func stackOn(t testing.TB, p string) []mountEntry {
	t.Helper()
	var out []mountEntry
	for _, m := range mounts(t) {
		if m.mountPoint == p {
			out = append(out, m)
		}
	}
	return out
}

// topOn returns the visible mount on p; the test fails if there is none.
func topOn(t testing.TB, p string) mountEntry {
	t.Helper()
	s := stackOn(t, p)
	if len(s) == 0 {
		t.Fatalf("nothing mounted on %s", p)
	}
	return s[len(s)-1]
}

// sweepMounts lazily unmounts everything mounted under dir, deepest first,
// so that the directory can be removed whatever a test left behind.
func sweepMounts(t testing.TB, dir string) {
	for range 50 {
		var under []mountEntry
		for _, m := range mounts(t) {
			if m.mountPoint == dir || strings.HasPrefix(m.mountPoint, dir+"/") {
				under = append(under, m)
			}
		}
		if len(under) == 0 {
			return
		}
		slices.SortFunc(under, func(a, b mountEntry) int { return len(b.mountPoint) - len(a.mountPoint) })
		for _, m := range under {
			unix.Unmount(m.mountPoint, unix.MNT_DETACH)
		}
	}
	t.Logf("mounts left under %s", dir)
}
