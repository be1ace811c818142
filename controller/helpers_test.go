package controller_test

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/controller"
	"hoard.dev/hoard/driver"
	"hoard.dev/hoard/tests/testenv"
	"hoard.dev/hoard/volume"
)

// env is a controller served over a unix socket, the way a CO reaches it,
// in front of a real MinIO with a bucket "data".
type env struct {
	m        *testenv.MinIO
	c        csi.ControllerClient
	identity csi.IdentityClient
	logs     *testenv.LogBuffer
}

// newEnv starts MinIO (once per call) and a controller with cfg, logging at
// debug level in logFormat ("text" or "json") to env.logs.
func newEnv(t *testing.T, m *testenv.MinIO, cfg controller.Config, logFormat string) *env {
	t.Helper()
	if m == nil {
		m = testenv.StartMinIO(t)
		m.MakeBucket(t, "data")
	}
	logs := &testenv.LogBuffer{}
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	var h slog.Handler = slog.NewTextHandler(logs, opts)
	if logFormat == "json" {
		h = slog.NewJSONHandler(logs, opts)
	}
	log := slog.New(h)
	cfg.Logger = log
	if cfg.IDKeys == nil {
		cfg.IDKeys = testKeys(t)
	}

	// A unix socket path must fit in 107 bytes; t.TempDir() paths carry
	// the test's name.
	dir, err := os.MkdirTemp("", "csi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	endpoint := "unix://" + filepath.Join(dir, "csi.sock")
	l, err := driver.Listen(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	svc := driver.Services{Identity: &driver.Identity{Logger: log}, Controller: controller.New(cfg), Logger: log}
	go func() { done <- driver.ServeListener(ctx, l, svc) }()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	})
	return &env{m: m, c: csi.NewControllerClient(conn), identity: csi.NewIdentityClient(conn), logs: logs}
}

// params returns StorageClass parameters that reach the bucket "data" of the
// test's MinIO, with kv (key, value, key, value...) set on top; a value of
// "-" deletes the key.
func (e *env) params(kv ...string) map[string]string {
	p := map[string]string{
		"bucket":    "data",
		"endpoint":  e.m.Endpoint(),
		"region":    "us-east-1",
		"pathStyle": "true",
		"insecure":  "true",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "-" {
			delete(p, kv[i])
		} else {
			p[kv[i]] = kv[i+1]
		}
	}
	return p
}

// secrets are the MinIO root credentials as a provisioner Secret.
func (e *env) secrets() map[string]string {
	return map[string]string{"accessKeyID": e.m.AccessKey(), "secretAccessKey": e.m.SecretKey()}
}

func mountCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

var readOnlyMany = mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY)

// createReq is a CreateVolume request for a read-only-many volume.
func (e *env) createReq(name string, params map[string]string) *csi.CreateVolumeRequest {
	return &csi.CreateVolumeRequest{
		Name:               name,
		VolumeCapabilities: []*csi.VolumeCapability{readOnlyMany},
		Parameters:         params,
		Secrets:            e.secrets(),
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// keys lists the bucket "data".
func (e *env) keys(t *testing.T) []string {
	t.Helper()
	s, err := ufs.NewS3(context.Background(), "data", e.m.S3Config())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	opt := ufs.ListOptions{}
	for {
		page, err := s.List(ctxT(t), opt)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		if page.Next == "" {
			return keys
		}
		opt.StartAfter = page.Next
	}
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// testKeys are the volume ID keys of the tests' controllers.
func testKeys(t testing.TB) *volume.IDKeys {
	t.Helper()
	k, err := volume.ParseIDKeys([]byte("0123456789abcdef0123456789abcdef-test-key\n"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
