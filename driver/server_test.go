package driver_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/driver"
	"hoard.dev/hoard/internal/buildinfo"

	"hoard.dev/hoard/tests/testenv"
)

// shortDir returns a fresh directory with a short path: a unix socket path
// must fit in 107 bytes, and t.TempDir() paths carry the test's name.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "csi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// serve runs svc on a unix socket until the test ends and returns a client
// connection to it.
func serve(t *testing.T, svc driver.Services) *grpc.ClientConn {
	t.Helper()
	endpoint := "unix://" + filepath.Join(shortDir(t), "csi.sock")
	l, err := driver.Listen(endpoint)
	if err != nil {
		t.Fatalf("Listen(%s): %v", endpoint, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- driver.ServeListener(ctx, l, svc) }()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", endpoint, err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	})
	return conn
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    driver.Endpoint
		wantErr string
	}{
		{in: "unix:///csi/csi.sock", want: driver.Endpoint{Network: "unix", Address: "/csi/csi.sock"}},
		{in: "unix:/csi/csi.sock", want: driver.Endpoint{Network: "unix", Address: "/csi/csi.sock"}},
		{in: "unix:///csi/../x/csi.sock", want: driver.Endpoint{Network: "unix", Address: "/x/csi.sock"}},
		{in: "tcp://127.0.0.1:10000", want: driver.Endpoint{Network: "tcp", Address: "127.0.0.1:10000"}},
		{in: "tcp://[::1]:10000", want: driver.Endpoint{Network: "tcp", Address: "[::1]:10000"}},
		{in: "tcp://localhost:0", want: driver.Endpoint{Network: "tcp", Address: "localhost:0"}},
		{in: "unix://csi.sock", wantErr: "absolute"},
		{in: "unix://", wantErr: "absolute"},
		{in: "tcp://0.0.0.0:10000", wantErr: "loopback"},
		{in: "tcp://10.1.2.3:10000", wantErr: "loopback"},
		{in: "tcp://example.com:10000", wantErr: "loopback"},
		{in: "tcp://127.0.0.1", wantErr: "port"},
		{in: "/csi/csi.sock", wantErr: "want unix://"},
		{in: "", wantErr: "want unix://"},
	} {
		got, err := driver.ParseEndpoint(tc.in)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseEndpoint(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("ParseEndpoint(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestListenUnixSocket(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "sub", "csi.sock")

	// A stale socket from an earlier run is replaced.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	l, err := driver.Listen("unix://" + path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	l.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}

	// A socket taken over by another instance is left alone on Close.
	l, err = driver.Listen("unix://" + path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	other, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Close removed another instance's socket: %v", err)
	}

	// Anything but a socket is not ours to remove.
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := driver.Listen("unix://" + file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Errorf("the regular file was touched: %q", b)
	}
}

func TestServeStopsAndRemovesSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "csi.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- driver.Serve(ctx, "unix://"+path, driver.Services{Identity: &driver.Identity{}}) }()
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := csi.NewIdentityClient(conn).GetPluginInfo(ctxT(t), &csi.GetPluginInfoRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("GetPluginInfo: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket still there after Serve returned: %v", err)
	}
	// Without an Identity service there is nothing to serve.
	if err := driver.Serve(context.Background(), "unix://"+path, driver.Services{}); err == nil {
		t.Error("Serve without Identity: no error")
	}
}

func TestIdentity(t *testing.T) {
	var healthErr error
	var mu sync.Mutex
	logs := &testenv.LogBuffer{}
	id := &driver.Identity{
		Health: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			return healthErr
		},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}
	c := csi.NewIdentityClient(serve(t, driver.Services{Identity: id}))

	info, err := c.GetPluginInfo(ctxT(t), &csi.GetPluginInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != "csi.hoard.dev" || info.GetVendorVersion() != buildinfo.Version {
		t.Errorf("GetPluginInfo = %v, want csi.hoard.dev %s", info, buildinfo.Version)
	}

	caps, err := c.GetPluginCapabilities(ctxT(t), &csi.GetPluginCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(caps.GetCapabilities()) != 1 || caps.GetCapabilities()[0].GetService().GetType() != csi.PluginCapability_Service_CONTROLLER_SERVICE {
		t.Errorf("GetPluginCapabilities = %v, want CONTROLLER_SERVICE only", caps)
	}

	setHealth := func(err error) {
		mu.Lock()
		healthErr = err
		mu.Unlock()
	}
	for _, tc := range []struct {
		name      string
		health    error
		wantReady bool
		wantCode  codes.Code
	}{
		{"healthy", nil, true, codes.OK},
		{"says not ready without wrapping ErrNotReady", errors.New("cache client: " + driver.ErrNotReady.Error()), false, codes.FailedPrecondition},
		{"not ready", errors.Join(driver.ErrNotReady, errors.New("waiting for the cache cluster")), false, codes.OK},
		{"unhealthy", errors.New("mounter: connection refused"), false, codes.FailedPrecondition},
	} {
		setHealth(tc.health)
		resp, err := c.Probe(ctxT(t), &csi.ProbeRequest{})
		if status.Code(err) != tc.wantCode {
			t.Errorf("%s: Probe error %v, want code %v", tc.name, err, tc.wantCode)
			continue
		}
		if err != nil {
			if !strings.Contains(status.Convert(err).Message(), tc.health.Error()) {
				t.Errorf("%s: Probe error %q does not say why", tc.name, err)
			}
			continue
		}
		if resp.GetReady() == nil || resp.GetReady().GetValue() != tc.wantReady {
			t.Errorf("%s: Probe ready = %v, want %v", tc.name, resp.GetReady(), tc.wantReady)
		}
	}
	if !strings.Contains(logs.String(), "waiting for the cache cluster") {
		t.Errorf("the reason for ready=false was not logged: %s", logs)
	}

	// No health check: always ready.
	c = csi.NewIdentityClient(serve(t, driver.Services{Identity: &driver.Identity{}}))
	resp, err := c.Probe(ctxT(t), &csi.ProbeRequest{})
	if err != nil || !resp.GetReady().GetValue() {
		t.Errorf("Probe without a health check = %v, %v; want ready", resp, err)
	}
}

// fakeController answers CreateVolume with the error in its name parameter
// and panics on DeleteVolume.
type fakeController struct {
	csi.UnimplementedControllerServer
}

func (fakeController) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "fail" {
		return nil, status.Error(codes.FailedPrecondition, "bucket does not exist")
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{VolumeId: "vol-1", VolumeContext: map[string]string{"bucket": "b"}}}, nil
}

func (fakeController) DeleteVolume(context.Context, *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	panic("boom")
}

func TestCallLog(t *testing.T) {
	const secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			logs := &testenv.LogBuffer{}
			opts := &slog.HandlerOptions{Level: slog.LevelDebug}
			var h slog.Handler = slog.NewTextHandler(logs, opts)
			if format == "json" {
				h = slog.NewJSONHandler(logs, opts)
			}
			conn := serve(t, driver.Services{Identity: &driver.Identity{}, Controller: fakeController{}, Logger: slog.New(h)})
			c := csi.NewControllerClient(conn)
			secrets := map[string]string{"accessKeyID": "AKIA-ID-" + secret[:6], "secretAccessKey": secret, "sessionToken": "tok-" + secret}

			if _, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "ok", Secrets: secrets, Parameters: map[string]string{"bucket": "b"}}); err != nil {
				t.Fatal(err)
			}
			_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "fail", Secrets: secrets})
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("CreateVolume(fail) = %v", err)
			}
			_, err = c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: "vol-1", Secrets: secrets})
			if status.Code(err) != codes.Internal {
				t.Errorf("a panicking handler gave %v, want Internal", err)
			}
			// The server survived the panic.
			if _, err := csi.NewIdentityClient(conn).Probe(ctxT(t), &csi.ProbeRequest{}); err != nil {
				t.Errorf("Probe after a panic: %v", err)
			}

			out := logs.String()
			for _, s := range []string{secret, secret[:6]} {
				if strings.Contains(out, s) {
					t.Errorf("the log contains a secret (%q):\n%s", s, out)
				}
			}
			for _, want := range []string{
				"/csi.v1.Controller/CreateVolume", "/csi.v1.Controller/DeleteVolume",
				"OK", "FailedPrecondition", "Internal", "bucket does not exist", "duration",
				"***stripped***", // the request was logged, redacted
				"vol-1",          // and so was the response
				"panic in CSI handler",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("the log lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestCallLogLevels(t *testing.T) {
	logs := &testenv.LogBuffer{}
	conn := serve(t, driver.Services{Identity: &driver.Identity{}, Controller: fakeController{},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if _, err := csi.NewIdentityClient(conn).Probe(ctxT(t), &csi.ProbeRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := csi.NewControllerClient(conn).CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "ok"}); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Contains(out, "Probe") {
		t.Errorf("Probe logged at info level:\n%s", out)
	}
	if !strings.Contains(out, "CreateVolume") || strings.Contains(out, "csi request") {
		t.Errorf("want one info line per call and no request bodies at info level:\n%s", out)
	}
}

func TestRedact(t *testing.T) {
	req := &csi.NodeStageVolumeRequest{VolumeId: "v", Secrets: map[string]string{"secretAccessKey": "hunter2"}}
	got := driver.Redact(req)
	if strings.Contains(got, "hunter2") || !strings.Contains(got, `"volume_id":"v"`) {
		t.Errorf("Redact = %s", got)
	}
	if got := driver.Redact(42); got != "42" {
		t.Errorf("Redact(42) = %q", got)
	}
}
