package sanity

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/controller"
	"hoard.dev/hoard/driver"
	"hoard.dev/hoard/node"
	"hoard.dev/hoard/node/nodetest"
	"hoard.dev/hoard/tests/testenv"
	"hoard.dev/hoard/volume"
)

// TestSanity runs csi-sanity's specs in-process: controller and node in one
// server, as the suite wants, on a unix socket.
func TestSanity(t *testing.T) {
	// A unix socket path must fit in 107 bytes.
	root, err := os.MkdirTemp("", "hsan-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	buckets := filepath.Join(root, "buckets")
	for _, d := range []string{filepath.Join(buckets, "sanity"), filepath.Join(root, "pods"), filepath.Join(root, "plugins")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logs := &testenv.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))

	keys, err := volume.ParseIDKeys([]byte("in-process-sanity-volume-id-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	ctrl := controller.New(controller.Config{
		AcceptSingleNodeWriter: true, IDKeys: keys, Logger: log,
		OpenBucket: func(ctx context.Context, name string, _ ufs.S3Config) (controller.Bucket, error) {
			return ufs.NewLocal(filepath.Join(buckets, name))
		},
	})
	mounts, mounter := nodetest.New()
	ns, err := node.New(node.Config{NodeID: "sanity-node", StateDir: filepath.Join(root, "state"), KubeletDir: root,
		AcceptSingleNodeWriter: true, Mounts: mounts, Mounter: mounter, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(root, "csi.sock")
	l, err := driver.Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- driver.ServeListener(ctx, l, driver.Services{Identity: &driver.Identity{Logger: log},
			Controller: ctrl, Node: ns, Logger: log})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serving CSI: %v", err)
		}
	})

	secrets := filepath.Join(root, "secrets.yaml")
	var b []byte
	for _, k := range []string{"CreateVolumeSecret", "DeleteVolumeSecret", "NodeStageVolumeSecret", "NodePublishVolumeSecret"} {
		b = fmt.Appendf(b, "%s:\n  accessKeyID: AKIAFAKE\n  secretAccessKey: not-a-real-secret\n", k)
	}
	if err := os.WriteFile(secrets, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + sock
	cfg.TargetPath = filepath.Join(root, "pods", "mount")
	cfg.StagingPath = filepath.Join(root, "plugins", "staging")
	cfg.SecretsFile = secrets
	cfg.TestVolumeParameters = map[string]string{"bucket": "sanity", "prefix": "csi-sanity", "deletePolicy": "delete"}
	sanity.Test(t, cfg)

	// The node specs really staged and published, on the fake table.
	if mounts.Calls("MountFUSE") < 3 || mounts.Calls("BindReadOnly") < 3 {
		t.Errorf("the suite passed with %d stages and %d publishes", mounts.Calls("MountFUSE"), mounts.Calls("BindReadOnly"))
	}
	if table, _ := mounts.List(); len(table) != 0 {
		t.Errorf("mounts left after the suite: %+v", table)
	}
	if t.Failed() {
		t.Logf("service log:\n%s", logs.String())
	}
}
