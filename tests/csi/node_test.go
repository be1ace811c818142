package csi_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"hoard.dev/hoard/cachecore/mtls"
	"hoard.dev/hoard/internal/metrics"
	"hoard.dev/hoard/node"
	"hoard.dev/hoard/tests/testenv"
)

// objects puts a few objects under prefix and returns their contents by
// path relative to the prefix.
func (e *env) objects(prefix string, seed uint64) map[string][]byte {
	e.t.Helper()
	files := map[string][]byte{
		"model.bin":       testenv.RandomBytes(3*MiB+12345, seed),
		"shards/00.bin":   testenv.RandomBytes(MiB, seed+1),
		"shards/01.bin":   testenv.RandomBytes(257*1024, seed+2),
		"config/conf.txt": []byte("served by the hoard mounter\n"),
	}
	for p, b := range files {
		e.minio.Put(e.t, e.bucket, prefix+"/"+p, b)
	}
	return files
}

func expectAll(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for p, b := range files {
		expectContent(t, filepath.Join(dir, p), b)
	}
}

// TestPluginRestartKeepsMounts kills the node plugin with SIGKILL while a
// volume is staged and published: the mounts are served by the mounter, so
// reads go on while the plugin is dead and after it restarts, and the
// restarted plugin takes the volume over without remounting anything.
func TestPluginRestartKeepsMounts(t *testing.T) {
	e := newEnv(t, envOptions{})
	files := e.objects("ds", 1)
	staging := filepath.Join(e.root, "staging", "vol1")
	target := filepath.Join(e.root, "pods", "p1", "mount")
	e.mustStage("vol1", staging, "ds")
	e.mustPublish("vol1", staging, target)
	expectAll(t, target, files)
	stagingMount, targetMount := topOn(t, staging), topOn(t, target)
	if targetMount.fsType != "fuse.hoard" || !strings.HasPrefix(targetMount.options, "ro,") {
		t.Fatalf("target mount is %s (%s), want a read-only fuse.hoard bind", targetMount.fsType, targetMount.options)
	}
	if err := os.WriteFile(filepath.Join(target, "new.txt"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write through the target: %v, want EROFS", err)
	}

	start := time.Now()
	e.plugin.kill(t)
	expectAll(t, target, files) // no plugin at all: still served
	e.plugin.restart(t)
	e.waitPlugin()
	t.Logf("plugin killed and ready again in %v", time.Since(start).Round(time.Millisecond))
	expectAll(t, target, files)

	// The same mounts: no remount happened.
	if got := topOn(t, staging); got.id != stagingMount.id || got.device != stagingMount.device {
		t.Errorf("staging mount after restart: id %d dev %s, before: id %d dev %s", got.id, got.device, stagingMount.id, stagingMount.device)
	}
	if got := topOn(t, target); got.id != targetMount.id {
		t.Errorf("target mount after restart: id %d, before %d", got.id, targetMount.id)
	}
	// The CO repeats its calls after a plugin restart: all idempotent.
	e.mustStage("vol1", staging, "ds")
	e.mustPublish("vol1", staging, target)
	if got := topOn(t, staging); got.id != stagingMount.id {
		t.Errorf("staging remounted by a repeated NodeStageVolume: id %d, before %d", got.id, stagingMount.id)
	}
	if n := len(stackOn(t, target)); n != 1 {
		t.Errorf("%d mounts on the target after a repeated NodePublishVolume, want 1", n)
	}
	if !strings.Contains(e.plugin.logs(), "healthy=1") {
		t.Errorf("restarted plugin did not report the healthy volume it found; log:\n%s", tail(e.plugin.logs()))
	}

	st, err := e.stats("vol1", target)
	if err != nil {
		t.Fatalf("NodeGetVolumeStats: %v", err)
	}
	if len(st.GetUsage()) != 2 || st.GetUsage()[0].GetTotal() <= 0 {
		t.Errorf("usage %v, want bytes and inodes", st.GetUsage())
	}
	if abnormal, msg, ok := node.LegacyCondition(st); !ok || abnormal {
		t.Errorf("volume condition: abnormal=%t %q (present %t), want normal", abnormal, msg, ok)
	}

	if err := e.unpublish("vol1", target); err != nil {
		t.Fatal(err)
	}
	if err := e.unstage("vol1", staging); err != nil {
		t.Fatal(err)
	}
	if s := stackOn(t, staging); len(s) != 0 {
		t.Errorf("staging still mounted after unstage: %v", s)
	}
}

// TestMounterRestartRestoresVolumes kills the mounter with SIGKILL: every
// mount it served answers ENOTCONN and the volume reports an abnormal
// condition; when a mounter runs again, the plugin's restore loop mounts the
// volume again and binds its targets, and reads through them are byte-exact.
func TestMounterRestartRestoresVolumes(t *testing.T) {
	e := newEnv(t, envOptions{})
	files := e.objects("ds", 2)
	staging := filepath.Join(e.root, "staging", "vol1")
	t1 := filepath.Join(e.root, "pods", "p1", "mount")
	t2 := filepath.Join(e.root, "pods", "p2", "mount")
	e.mustStage("vol1", staging, "ds")
	e.mustPublish("vol1", staging, t1)
	e.mustPublish("vol1", staging, t2)
	expectAll(t, t1, files)
	before := topOn(t, staging)
	// The listings just made are kept in the cache dir, for the restore.
	testenv.Eventually(t, 10*time.Second, "listings kept on disk", func() error {
		ents, err := os.ReadDir(filepath.Join(e.root, "cache", "listings"))
		if err != nil || len(ents) == 0 {
			return fmt.Errorf("listings dir: %d entries, %v", len(ents), err)
		}
		return nil
	})

	e.mounter.kill(t)
	// A listing needs the server. (A file read before may still be read
	// from the kernel's page cache: files open without a round trip.)
	if _, err := os.ReadDir(t1); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("listing after the mounter died: %v, want ENOTCONN", err)
	}
	st, err := e.stats("vol1", t1)
	if err != nil {
		t.Fatalf("NodeGetVolumeStats of a broken volume: %v", err)
	}
	abnormal, msg, ok := node.LegacyCondition(st)
	if !ok || !abnormal || !strings.Contains(msg, "FUSE server is gone") {
		t.Errorf("volume condition: abnormal=%t %q (present %t), want abnormal, FUSE server gone", abnormal, msg, ok)
	}
	ctx, cancel := callCtx()
	h, err := e.node.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "vol1", VolumePublishPath: t1})
	cancel()
	if err != nil {
		t.Fatalf("NodeGetVolumeHealth: %v", err)
	}
	if hs := h.GetVolumeHealth().GetHealthStatuses(); len(hs) == 0 || hs[0].GetStatus() != csi.VolumeHealthErrorType_INACCESSIBLE ||
		hs[0].GetReason() != "FUSEServerGone" {
		t.Errorf("volume health %v, want INACCESSIBLE FUSEServerGone", hs)
	}
	// The restore loop waits for the mounter: nothing is torn down.
	time.Sleep(2 * time.Second)
	if got := topOn(t, staging); got.id != before.id {
		t.Errorf("staging mount replaced while no mounter runs")
	}

	start := time.Now()
	e.mounter.restart(t)
	testenv.Eventually(t, 30*time.Second, "volume restored", func() error {
		// Files read before may still be read from the dead mount's page
		// cache (they open without a round trip): wait for the new mount.
		st := stackOn(t, staging) // empty for a moment while it is remounted
		if len(st) == 0 || st[len(st)-1].device == before.device {
			return errors.New("staging mount not replaced yet")
		}
		live := st[len(st)-1].device
		for _, dir := range []string{t1, t2} {
			// The staging mount is replaced a moment before the targets
			// are bound to it, and a read may come from the page cache.
			if s := stackOn(t, dir); len(s) == 0 || s[len(s)-1].device != live {
				return fmt.Errorf("%s not bound to the live mount yet", dir)
			}
			b, err := readFile(filepath.Join(dir, "config", "conf.txt"))
			if err != nil {
				return err
			}
			if string(b) != string(files["config/conf.txt"]) {
				return errors.New("wrong content")
			}
		}
		return nil
	})
	t.Logf("restored %v after the mounter restarted", time.Since(start).Round(time.Millisecond))
	expectAll(t, t1, files)
	expectAll(t, t2, files)
	after := topOn(t, staging)
	if after.device == before.device {
		t.Errorf("staging mount not replaced (device %s)", after.device)
	}
	for _, dir := range []string{t1, t2} {
		if s := stackOn(t, dir); len(s) > 2 || s[len(s)-1].device != after.device {
			t.Errorf("%s: stack %v, want at most 2 layers with the live one (%s) on top", dir, s, after.device)
		}
	}
	st, err = e.stats("vol1", t1)
	if err != nil {
		t.Fatal(err)
	}
	if abnormal, msg, _ := node.LegacyCondition(st); abnormal {
		t.Errorf("volume condition still abnormal after the restore: %q", msg)
	}
	if l := e.list(); len(l.Sessions) != 1 || l.Sessions[0].Device != after.device {
		t.Errorf("mounter sessions %+v, want one on %s", l.Sessions, after.device)
	}

	// A second crash restores as well, and the targets stay at two layers.
	e.mounter.kill(t)
	e.mounter.restart(t)
	testenv.Eventually(t, 30*time.Second, "volume restored a second time", func() error {
		_, err := readFile(filepath.Join(t2, "config", "conf.txt"))
		return err
	})
	expectAll(t, t1, files)
	for _, dir := range []string{t1, t2} {
		if s := stackOn(t, dir); len(s) > 2 {
			t.Errorf("%s: %d layers after two restores, want at most 2", dir, len(s))
		}
	}

	for _, dir := range []string{t1, t2} {
		if err := e.unpublish("vol1", dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("target %s still there after unpublish: %v", dir, err)
		}
	}
	if err := e.unstage("vol1", staging); err != nil {
		t.Fatal(err)
	}
}

// TestTeardownIsIdempotent: publish twice, then with the mounter dead (a
// node drain after a crash) unpublish and unstage the broken mounts, each
// twice; all succeed and nothing stays mounted or recorded.
func TestTeardownIsIdempotent(t *testing.T) {
	e := newEnv(t, envOptions{})
	files := e.objects("ds", 3)
	staging := filepath.Join(e.root, "staging", "vol1")
	target := filepath.Join(e.root, "pods", "p1", "mount")
	e.mustStage("vol1", staging, "ds")
	e.mustStage("vol1", staging, "ds")
	e.mustPublish("vol1", staging, target)
	e.mustPublish("vol1", staging, target)
	if n := len(stackOn(t, target)); n != 1 {
		t.Fatalf("%d mounts on the target after publishing twice, want 1", n)
	}
	expectAll(t, target, files)

	e.mounter.kill(t)
	if _, err := os.ReadDir(target); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("listing after the mounter died: %v, want ENOTCONN", err)
	}
	for i := range 2 {
		if err := e.unpublish("vol1", target); err != nil {
			t.Fatalf("unpublish #%d of a broken mount: %v", i+1, err)
		}
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target still there: %v", err)
	}
	for i := range 2 {
		if err := e.unstage("vol1", staging); err != nil {
			t.Fatalf("unstage #%d of a broken mount: %v", i+1, err)
		}
	}
	if s := stackOn(t, staging); len(s) != 0 {
		t.Errorf("staging still mounted: %v", s)
	}
	if ents, _ := filepath.Glob(filepath.Join(e.stateDir, "*.json")); len(ents) != 0 {
		t.Errorf("state left after unstage: %v", ents)
	}
	// Never staged at all: also fine.
	if err := e.unpublish("never", filepath.Join(e.root, "nothing")); err != nil {
		t.Errorf("unpublish of an unknown volume: %v", err)
	}
	if err := e.unstage("never", filepath.Join(e.root, "nothing")); err != nil {
		t.Errorf("unstage of an unknown volume: %v", err)
	}
}

// TestEphemeralInlineVolume publishes a CSI inline volume: staged into the
// plugin's own directory, read, and unstaged by its unpublish.
func TestEphemeralInlineVolume(t *testing.T) {
	root := shortTempDir(t)
	minio := testenv.StartMinIO(t)
	e := newEnv(t, envOptions{root: root, minio: minio,
		pluginArgs: []string{"--inline-volume-allow", "http://" + minio.Endpoint() + "/data"}})
	files := e.objects("inline", 4)
	target := filepath.Join(e.root, "pods", "p1", "volumes", "inline")
	vctx := e.volumeContext("inline")
	vctx["csi.storage.k8s.io/ephemeral"] = "true"
	vctx["csi.storage.k8s.io/pod.name"] = "p1"
	vctx["csi.storage.k8s.io/pod.namespace"] = "default"
	req := &csi.NodePublishVolumeRequest{
		VolumeId: "csi-0123abcd", TargetPath: target, Readonly: true,
		// What the kubelet sends for every inline volume.
		VolumeCapability: mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER),
		VolumeContext:    vctx, Secrets: e.secrets(),
	}
	// Refused before anything is mounted: without a Secret (never the
	// node's own identity), and for a bucket the operator did not allow.
	noSecret := proto.Clone(req).(*csi.NodePublishVolumeRequest)
	noSecret.Secrets = nil
	otherBucket := proto.Clone(req).(*csi.NodePublishVolumeRequest)
	otherBucket.VolumeContext = maps.Clone(vctx)
	otherBucket.VolumeContext["bucket"] = "other"
	for _, tc := range []struct {
		name string
		req  *csi.NodePublishVolumeRequest
		want codes.Code
	}{{"no Secret", noSecret, codes.InvalidArgument}, {"bucket not allowed", otherBucket, codes.PermissionDenied}} {
		ctx, cancel := callCtx()
		_, err := e.node.NodePublishVolume(ctx, tc.req)
		cancel()
		if status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if l := e.list(); len(l.Sessions) != 0 {
		t.Fatalf("refused inline volumes reached the mounter: %+v", l.Sessions)
	}
	for range 2 {
		ctx, cancel := callCtx()
		_, err := e.node.NodePublishVolume(ctx, req)
		cancel()
		if err != nil {
			t.Fatalf("NodePublishVolume (ephemeral): %v", err)
		}
	}
	expectAll(t, target, files)
	if l := e.list(); len(l.Sessions) != 1 || !strings.HasPrefix(l.Sessions[0].StagingPath, e.stateDir) {
		t.Errorf("mounter sessions %+v, want one staged under %s", l.Sessions, e.stateDir)
	}
	staging := e.list().Sessions[0].StagingPath
	if err := e.unpublish("csi-0123abcd", target); err != nil {
		t.Fatal(err)
	}
	if s := stackOn(t, staging); len(s) != 0 {
		t.Errorf("ephemeral staging still mounted: %v", s)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Errorf("ephemeral staging dir left: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "session ended", func() error {
		if n := len(e.list().Sessions); n != 0 {
			return errors.New("sessions left")
		}
		return nil
	})
}

// TestVolumesShareBackend stages two volumes of one bucket with the same
// credentials: two FUSE sessions in one mounter, one cache backend, which
// goes away with the last of them.
func TestVolumesShareBackend(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, b := e.objects("a", 5), e.objects("b", 6)
	sa, sb := filepath.Join(e.root, "staging", "a"), filepath.Join(e.root, "staging", "b")
	e.mustStage("vol-a", sa, "a")
	e.mustStage("vol-b", sb, "b")
	expectAll(t, sa, a)
	expectAll(t, sb, b)
	l := e.list()
	if len(l.Sessions) != 2 || len(l.Backends) != 1 || l.Backends[0].Refs != 2 {
		t.Fatalf("mounter has %d sessions and backends %+v; want 2 sessions sharing one backend", len(l.Sessions), l.Backends)
	}
	if l.Sessions[0].Backend != l.Sessions[1].Backend {
		t.Errorf("sessions on backends %s and %s", l.Sessions[0].Backend, l.Sessions[1].Backend)
	}
	if err := e.unstage("vol-a", sa); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "one user left", func() error {
		if l := e.list(); len(l.Sessions) != 1 || len(l.Backends) != 1 || l.Backends[0].Refs != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	expectAll(t, sb, b)
	if err := e.unstage("vol-b", sb); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "backend closed", func() error {
		if l := e.list(); len(l.Sessions) != 0 || len(l.Backends) != 0 {
			return errors.New("not yet")
		}
		return nil
	})
}

// TestStageErrors: what NodeStageVolume answers when it cannot stage, and
// that it leaves nothing mounted or recorded then. Secrets must not show in
// any log, the wrong ones included.
func TestStageErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.objects("ds", 7)
	wrong := e.secrets()
	wrong["secretAccessKey"] = "wrong-secret-Zq81xk"
	writer := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	block := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
	}
	otherCache := e.volumeContext("ds")
	otherCache["cacheCluster"] = "elsewhere"
	missingBucket := e.volumeContext("ds")
	missingBucket["bucket"] = "no-such-bucket"
	unknownKey := e.volumeContext("ds")
	unknownKey["colour"] = "blue"
	for _, tc := range []struct {
		name    string
		vctx    map[string]string
		secrets map[string]string
		cap     *csi.VolumeCapability
		want    codes.Code
	}{
		{"no such bucket", missingBucket, e.secrets(), readerCap, codes.NotFound},
		{"wrong secret key", e.volumeContext("ds"), wrong, readerCap, codes.Unauthenticated},
		{"no credentials at all", e.volumeContext("ds"), nil, readerCap, codes.PermissionDenied},
		{"secret without secretAccessKey", e.volumeContext("ds"), map[string]string{"accessKeyID": "x"}, readerCap, codes.InvalidArgument},
		{"unknown volume context key", unknownKey, e.secrets(), readerCap, codes.InvalidArgument},
		{"cache cluster on a node without one", otherCache, e.secrets(), readerCap, codes.FailedPrecondition},
		{"writer mode", e.volumeContext("ds"), e.secrets(), writer, codes.FailedPrecondition},
		{"block", e.volumeContext("ds"), e.secrets(), block, codes.FailedPrecondition},
		{"no capability", e.volumeContext("ds"), e.secrets(), nil, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			staging := filepath.Join(e.root, "staging", strings.ReplaceAll(tc.name, " ", "-"))
			os.MkdirAll(staging, 0o750)
			ctx, cancel := callCtx()
			defer cancel()
			_, err := e.node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
				VolumeId: "vol-" + tc.name, StagingTargetPath: staging, VolumeCapability: tc.cap,
				VolumeContext: tc.vctx, Secrets: tc.secrets,
			})
			if status.Code(err) != tc.want {
				t.Fatalf("NodeStageVolume: %v, want %s", err, tc.want)
			}
			if s := stackOn(t, staging); len(s) != 0 {
				t.Errorf("failed stage left a mount: %v", s)
			}
		})
	}
	if ents, _ := filepath.Glob(filepath.Join(e.stateDir, "*.json")); len(ents) != 0 {
		t.Errorf("failed stages left state: %v", ents)
	}
	if l := e.list(); len(l.Sessions) != 0 || len(l.Backends) != 0 {
		t.Errorf("failed stages left sessions %+v or backends %+v", l.Sessions, l.Backends)
	}

	// Without a mounter: UNAVAILABLE, and nothing left mounted.
	e.mounter.kill(t)
	staging := filepath.Join(e.root, "staging", "no-mounter")
	os.MkdirAll(staging, 0o750)
	if err := e.stage("vol-nm", staging, e.volumeContext("ds"), e.secrets()); status.Code(err) != codes.Unavailable {
		t.Errorf("NodeStageVolume without a mounter: %v, want Unavailable", err)
	}
	if s := stackOn(t, staging); len(s) != 0 {
		t.Errorf("stage without a mounter left a mount: %v", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := e.identity.Probe(ctx, &csi.ProbeRequest{}); err != nil || r.GetReady().GetValue() {
		t.Errorf("Probe without a mounter: ready=%v err=%v, want not ready", r.GetReady(), err)
	}
	e.checkNoSecrets(wrong["secretAccessKey"], e.minio.SecretKey())
}

// TestStateFiles: the records that hold secrets are private, and gone
// after unstage.
func TestStateFiles(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.objects("ds", 8)
	staging := filepath.Join(e.root, "staging", "vol1")
	e.mustStage("vol1", staging, "ds")
	fi, err := os.Stat(e.stateDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v, mode %v, want 0700", err, fi.Mode().Perm())
	}
	files, _ := filepath.Glob(filepath.Join(e.stateDir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("state files %v, want 1", files)
	}
	fi, err = os.Stat(files[0])
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
	if err := e.unstage("vol1", staging); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(files[0]); !os.IsNotExist(err) {
		t.Errorf("state file left after unstage: %v", err)
	}
}

// tail returns the last lines of a log, for failure messages.
func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// TestKubeletRegistration: with --kubelet-registration-path the plugin
// serves the kubelet's registration API in the plugin watcher's directory.
func TestKubeletRegistration(t *testing.T) {
	root := shortTempDir(t)
	registry := filepath.Join(root, "registry")
	kubeletView := "/var/lib/kubelet/plugins/csi.hoard.dev/csi.sock"
	e := newEnv(t, envOptions{root: root, pluginArgs: []string{
		"--kubelet-registration-path", kubeletView, "--plugin-registration-dir", registry}})
	sock := filepath.Join(registry, "csi.hoard.dev-reg.sock")
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := callCtx()
	defer cancel()
	info, err := registerapi.NewRegistrationClient(conn).GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil {
		t.Fatalf("GetInfo on %s: %v", sock, err)
	}
	if info.Type != registerapi.CSIPlugin || info.Name != "csi.hoard.dev" || info.Endpoint != kubeletView {
		t.Errorf("GetInfo: %+v", info)
	}
	e.plugin.stop()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("registration socket left after the plugin stopped: %v", err)
	}
}

// TestClusterCache runs the mounter against a cache cluster (etcd and a
// worker process): a volume reads through the worker, and a volume naming a
// cluster without workers still reads, from the bucket. Volumes of the two
// clusters get two backends.
func TestClusterCache(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	root := shortTempDir(t)
	tlsFiles := mtls.ClientFiles(testenv.Certs(t))
	e := newEnv(t, envOptions{root: root, mounterArgs: []string{
		"--etcd", strings.Join(etcd.Endpoints(), ","), "--cluster", "test", "--liveness-ttl", "2s",
		"--tls-ca", tlsFiles.CA, "--tls-cert", tlsFiles.Cert, "--tls-key", tlsFiles.Key}})
	w := testenv.StartWorkerProc(t, testenv.WorkerOptions{ID: "w1", Etcd: etcd.Endpoints(), Cluster: "test", S3: e.minio})
	files := e.objects("ds", 10)
	s1 := filepath.Join(e.root, "staging", "vol1")
	e.mustStage("vol1", s1, "ds")
	expectAll(t, s1, files)
	ctx, cancel := callCtx()
	defer cancel()
	served, err := w.Metric(ctx, metrics.WorkerServedBytes.Name())
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for _, b := range files {
		total += len(b)
	}
	if served < float64(total) {
		t.Errorf("the worker served %v bytes, want at least the %d read", served, total)
	}

	vctx := e.volumeContext("ds")
	vctx["cacheCluster"] = "empty"
	s2 := filepath.Join(e.root, "staging", "vol2")
	os.MkdirAll(s2, 0o750)
	if err := e.stage("vol2", s2, vctx, e.secrets()); err != nil {
		t.Fatalf("stage through a cluster without workers: %v", err)
	}
	expectAll(t, s2, files)
	l := e.list()
	if len(l.Backends) != 2 {
		t.Errorf("backends %+v, want one per cluster", l.Backends)
	}
	for _, b := range l.Backends {
		if b.Cluster != "test" && b.Cluster != "empty" {
			t.Errorf("backend %+v: unexpected cluster", b)
		}
	}
	for id, p := range map[string]string{"vol1": s1, "vol2": s2} {
		if err := e.unstage(id, p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestoreWhileBucketDown: a mounter that restarts while the store is
// down still gets the volume back (a restore does not insist on listing the
// bucket, as a first stage does), and reads work again once the store is
// back, without waiting for another restore.
func TestRestoreWhileBucketDown(t *testing.T) {
	e := newEnv(t, envOptions{})
	files := e.objects("ds", 11)
	staging := filepath.Join(e.root, "staging", "vol1")
	target := filepath.Join(e.root, "pods", "p1", "mount")
	e.mustStage("vol1", staging, "ds")
	e.mustPublish("vol1", staging, target)
	expectAll(t, target, files)

	e.mounter.kill(t)
	e.minio.Stop(t)
	e.mounter.restart(t)
	testenv.Eventually(t, 30*time.Second, "volume mounted again while the store is down", func() error {
		ctx, cancel := callCtx()
		defer cancel()
		h, err := e.node.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{VolumeId: "vol1", VolumePublishPath: target})
		if err != nil {
			return err
		}
		if hs := h.GetVolumeHealth().GetHealthStatuses(); len(hs) != 0 {
			return errors.New(hs[0].GetReason())
		}
		return nil
	})
	e.minio.Restart(t)
	testenv.Eventually(t, 30*time.Second, "reads once the store is back", func() error {
		_, err := readFile(filepath.Join(target, "config", "conf.txt"))
		return err
	})
	expectAll(t, target, files)
}
