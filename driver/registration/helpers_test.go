package registration

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"hoard.dev/hoard/tests/testenv"
)

const (
	testDriver   = "csi.hoard.dev"
	testEndpoint = "/var/lib/kubelet/plugins/csi.hoard.dev/csi.sock"
)

// fakeKubelet plays the kubelet's plugin watcher against a registration
// socket: it dials the socket as a bare unix path with a context dialer and
// uses the kubelet's timeouts (1 s for GetInfo, 5 s for the notification), as
// pkg/kubelet/pluginmanager/operationexecutor does.
type fakeKubelet struct {
	client registerapi.RegistrationClient
}

func dialKubelet(t *testing.T, socketPath string) *fakeKubelet {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+socketPath,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}))
	if err != nil {
		t.Fatalf("dialing %s: %v", socketPath, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &fakeKubelet{client: registerapi.NewRegistrationClient(conn)}
}

func (k *fakeKubelet) getInfo() (*registerapi.PluginInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return k.client.GetInfo(ctx, &registerapi.InfoRequest{})
}

func (k *fakeKubelet) notify(registered bool, msg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := k.client.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{
		PluginRegistered: registered,
		Error:            msg,
	})
	return err
}

// register runs the kubelet's registration sequence: GetInfo, a check that a
// CSIPlugin handler exists and accepts the plugin, then the verdict.
func (k *fakeKubelet) register(accept func(*registerapi.PluginInfo) error) error {
	info, err := k.getInfo()
	if err != nil {
		return err
	}
	if info.Type != registerapi.CSIPlugin {
		return k.notify(false, "no handler registered for plugin type: "+info.Type)
	}
	if err := accept(info); err != nil {
		return k.notify(false, "plugin validation failed with err: "+err.Error())
	}
	return k.notify(true, "")
}

// count is how many log lines contain s.
// testConfig is a valid Config in a fresh directory, logging to the returned
// buffer at debug level.
func testConfig(t *testing.T) (Config, *testenv.LogBuffer) {
	t.Helper()
	logs := &testenv.LogBuffer{}
	return Config{
		DriverName:    testDriver,
		Endpoint:      testEndpoint,
		RegistryDir:   t.TempDir(),
		CheckInterval: time.Hour, // tests that want the watchdog set it
		Logger:        slogText(logs),
	}, logs
}

// startServer serves cfg until the test ends, then cancels and waits for the
// server to stop.
func startServer(t *testing.T, cfg Config) (*Server, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Serve(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		waitDone(t, s)
	})
	return s, cancel
}

func waitDone(t *testing.T, s *Server) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop within 10s of its context being cancelled")
	}
}

// staleSocket leaves a unix socket file at path with nothing listening on
// it, as a killed plugin does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("unix", path); err == nil {
		t.Fatal("stale socket still accepts connections")
	}
}

// otherInstance listens at path as a second instance of the driver would,
// after removing whatever is there, and closes at the end of the test.
func otherInstance(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
}
