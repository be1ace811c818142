package node

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"hoard.dev/hoard/fusefd"
)

func TestParseMounts(t *testing.T) {
	info := `22 1 0:21 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755
40 22 0:40 / /run/a\040b/staging ro,nosuid,nodev,relatime shared:7 - fuse.hoard hoard:s3://data/ds/ ro,user_id=0,group_id=0,default_permissions,allow_other
41 22 0:40 / /var/lib/kubelet/pods/p1/mount ro,nosuid,nodev shared:7 master:3 - fuse.hoard hoard:s3://data/ds/ ro
42 41 0:41 / /var/lib/kubelet/pods/p1/mount ro,nosuid,nodev - fuse.hoard hoard:s3://data/ds/ ro
`
	ms, err := fusefd.ParseMountinfo([]byte(info))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4 {
		t.Fatalf("%d entries, want 4", len(ms))
	}
	if got := ms[1]; got.MountPoint != "/run/a b/staging" || got.Device != "0:40" || !got.IsHoard() || got.Source != "hoard:s3://data/ds/" {
		t.Errorf("entry 1: %+v", got)
	}
	if got := ms[2].Optional; len(got) != 2 || got[0] != "shared:7" || got[1] != "master:3" {
		t.Errorf("optional fields %q", got)
	}
	stack := stackAt(ms, "/var/lib/kubelet/pods/p1/mount")
	if len(stack) != 2 || top(stack).ID != 42 || top(stack).Device != "0:41" {
		t.Errorf("stack %+v, want 41 then 42 on top", stack)
	}
	if top(stackAt(ms, "/nowhere")) != nil {
		t.Error("a path with no mount has a top")
	}
	if _, err := fusefd.ParseMountinfo([]byte("1 2 3\n")); err == nil {
		t.Error("a malformed line parsed")
	}
}

// TestLegacyCondition: the condition survives marshalling, and an older
// CSI's decoder finds it as field 2 {1: abnormal, 2: message}.
func TestLegacyCondition(t *testing.T) {
	for _, abnormal := range []bool{false, true} {
		resp := &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{{Total: 1, Unit: csi.VolumeUsage_BYTES}}}
		setLegacyCondition(resp, abnormal, "the server is gone")
		b, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		var back csi.NodeGetVolumeStatsResponse
		if err := proto.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		gotAbnormal, msg, ok := LegacyCondition(&back)
		if !ok || gotAbnormal != abnormal || msg != "the server is gone" || len(back.GetUsage()) != 1 {
			t.Errorf("abnormal=%t: decoded abnormal=%t %q ok=%t usage=%v", abnormal, gotAbnormal, msg, ok, back.GetUsage())
		}
		// As the old generated code sees it: field 2 is a message.
		found := false
		for rest := b; len(rest) > 0; {
			num, typ, n := protowire.ConsumeTag(rest)
			rest = rest[n:]
			m := protowire.ConsumeFieldValue(num, typ, rest)
			if num == 2 && typ == protowire.BytesType {
				found = true
			}
			rest = rest[m:]
		}
		if !found {
			t.Error("field 2 not on the wire")
		}
	}
	if _, _, ok := LegacyCondition(&csi.NodeGetVolumeStatsResponse{}); ok {
		t.Error("condition found in an empty response")
	}
}

func TestCheckCapability(t *testing.T) {
	mount := func(m csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
		return &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: m},
		}
	}
	block := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
	}
	const (
		snro = csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY
		mnro = csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY
		snw  = csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
		mnmw = csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
	)
	for _, tc := range []struct {
		name                string
		cap                 *csi.VolumeCapability
		acceptWriter, ephem bool
		want                codes.Code
	}{
		{"nil", nil, false, false, codes.InvalidArgument},
		{"no access mode", &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}}, false, false, codes.InvalidArgument},
		{"no access type", &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: mnro}}, false, false, codes.InvalidArgument},
		{"block", block, true, false, codes.FailedPrecondition},
		{"single node reader", mount(snro), false, false, codes.OK},
		{"multi node reader", mount(mnro), false, false, codes.OK},
		{"writer refused", mount(snw), false, false, codes.FailedPrecondition},
		{"writer accepted", mount(snw), true, false, codes.OK},
		{"writer of an inline volume", mount(snw), false, true, codes.OK},
		{"multi writer", mount(mnmw), true, true, codes.FailedPrecondition},
	} {
		if got := status.Code(checkCapability(tc.cap, tc.acceptWriter, tc.ephem)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestCredentials(t *testing.T) {
	if c, err := credentials(nil); c != nil || err != nil {
		t.Errorf("no secrets: %v, %v; want ambient (nil)", c, err)
	}
	c, err := credentials(map[string]string{"accessKeyID": "AKIA1234", "secretAccessKey": "s3cr3t", "sessionToken": "tok", "other": "x"})
	if err != nil || c.AccessKeyID != "AKIA1234" || c.SecretAccessKey != "s3cr3t" || c.SessionToken != "tok" {
		t.Errorf("credentials %v, %v", c, err)
	}
	_, err = credentials(map[string]string{"accessKeyID": "AKIA1234", "secret": "s3cr3t"})
	if status.Code(err) != codes.InvalidArgument || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "secretAccessKey") {
		t.Errorf("missing secretAccessKey: %v", err)
	}
}

func TestStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, skipped, err := openStore(dir)
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	v := &volumeState{VolumeID: "vol/1", StagingPath: "/staging", Context: map[string]string{"bucket": "b"},
		Secrets: map[string]string{"secretAccessKey": "s3cr3t"}, Device: "0:40", Targets: []string{"/t1"}}
	if err := s.put(v); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "junk.json"), []byte("{"), 0o600)
	name := filepath.Join(dir, stateFile("vol/1"))
	if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v %v", fi.Mode(), err)
	}
	s2, skipped, err := openStore(dir)
	if err != nil || len(skipped) != 1 {
		t.Fatalf("reopen: %v, skipped %v (want junk.json only)", err, skipped)
	}
	got := s2.get("vol/1")
	if got == nil || got.Device != "0:40" || got.Secrets["secretAccessKey"] != "s3cr3t" || !got.hasTarget("/t1") {
		t.Fatalf("read back %+v", got)
	}
	got.Secrets["secretAccessKey"] = "changed"
	if s2.get("vol/1").Secrets["secretAccessKey"] != "s3cr3t" {
		t.Error("get returned the stored copy, not a clone")
	}
	if str := got.String(); strings.Contains(str, "changed") || strings.Contains(str, "s3cr3t") {
		t.Errorf("String shows a secret: %s", str)
	}
	if err := s2.remove("vol/1"); err != nil {
		t.Fatal(err)
	}
	if err := s2.remove("vol/1"); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Errorf("file left: %v", err)
	}
}

func TestVolumeLocks(t *testing.T) {
	var l volumeLocks
	unlock, err := l.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.tryLock("a"); ok {
		t.Error("tryLock took a held lock")
	}
	other, ok := l.tryLock("b")
	if !ok {
		t.Error("tryLock of another volume failed")
	}
	other()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.lock(ctx, "a"); status.Code(err) != codes.Aborted {
		t.Errorf("lock of a held volume: %v, want Aborted", err)
	}
	got := make(chan struct{})
	go func() {
		u, err := l.lock(context.Background(), "a")
		if err == nil {
			u()
		}
		close(got)
	}()
	unlock()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken by unlock")
	}
}

// An inline ephemeral volume the kubelet did not mark as one (CSIDriver
// without podInfoOnMount) reaches NodePublishVolume with SINGLE_NODE_WRITER
// and no staging path: the error says what to fix.
func TestPublishUnmarkedInlineVolume(t *testing.T) {
	kubelet := t.TempDir()
	s := newTestServer(t, kubelet)
	for _, mode := range []csi.VolumeCapability_AccessMode_Mode{
		csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY,
	} {
		_, err := s.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
			VolumeId:   "csi-0123",
			TargetPath: filepath.Join(kubelet, "pods", "p", "mount"),
			VolumeCapability: &csi.VolumeCapability{
				AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
				AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
			},
			VolumeContext: map[string]string{"bucket": "b"},
		})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "podInfoOnMount: true") {
			t.Errorf("%s: %v, want FailedPrecondition naming podInfoOnMount", mode, err)
		}
	}
}

// newTestServer is a node service on temporary directories, for calls
// that are answered before anything is mounted.
func newTestServer(t *testing.T, kubeletDir string, inline ...string) *Server {
	t.Helper()
	var rules []InlineRule
	for _, r := range inline {
		rule, err := ParseInlineRule(r)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, rule)
	}
	s, err := New(Config{NodeID: "n", StateDir: filepath.Join(t.TempDir(), "state"), KubeletDir: kubeletDir,
		MounterSocket: filepath.Join(t.TempDir(), "no-mounter.sock"), InlineAllow: rules})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestInlineVolumeRefused: an inline ephemeral volume is refused before
// anything is mounted unless the operator allowed its endpoint and bucket,
// and always without a Secret: the mounter never reads with the node's own
// identity for a pod author.
func TestInlineVolumeRefused(t *testing.T) {
	kubelet := t.TempDir()
	target := filepath.Join(kubelet, "pods", "p1", "volumes", "kubernetes.io~csi", "inline", "mount")
	secrets := map[string]string{"accessKeyID": "AK", "secretAccessKey": "SK-value"}
	req := func(vc map[string]string, secrets map[string]string) *csi.NodePublishVolumeRequest {
		m := map[string]string{"csi.storage.k8s.io/ephemeral": "true", "csi.storage.k8s.io/pod.name": "p1"}
		maps.Copy(m, vc)
		return &csi.NodePublishVolumeRequest{VolumeId: "csi-1", TargetPath: target, VolumeContext: m, Secrets: secrets,
			VolumeCapability: &csi.VolumeCapability{
				AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
				AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
			}}
	}
	minio := map[string]string{"bucket": "data", "endpoint": "http://10.0.0.5:9000"}
	off := newTestServer(t, kubelet)
	on := newTestServer(t, kubelet, "http://10.0.0.5:9000/data", "s3.example.com/*")
	for _, tc := range []struct {
		name string
		s    *Server
		req  *csi.NodePublishVolumeRequest
		want codes.Code
		msg  string
	}{
		{"off by default", off, req(minio, secrets), codes.FailedPrecondition, "--inline-volume-allow"},
		{"no Secret", on, req(minio, nil), codes.InvalidArgument, "nodePublishSecretRef"},
		{"Secret without a key", on, req(minio, map[string]string{"accessKeyID": "AK"}), codes.InvalidArgument, "secretAccessKey"},
		{"bucket not allowed", on, req(map[string]string{"bucket": "other", "endpoint": "http://10.0.0.5:9000"}, secrets),
			codes.PermissionDenied, "http://10.0.0.5:9000/other"},
		{"https instead of http", on, req(map[string]string{"bucket": "data", "endpoint": "https://10.0.0.5:9000"}, secrets),
			codes.PermissionDenied, "10.0.0.5:9000/data"},
		{"endpoint not allowed", on, req(map[string]string{"bucket": "data", "endpoint": "http://kubernetes.default:443"}, secrets),
			codes.PermissionDenied, "kubernetes.default"},
		{"AWS not allowed", on, req(map[string]string{"bucket": "data"}, secrets), codes.PermissionDenied, "aws/data"},
	} {
		_, err := tc.s.NodePublishVolume(context.Background(), tc.req)
		if status.Code(err) != tc.want || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "SK-value") {
			t.Errorf("%s: %v, want %v mentioning %q", tc.name, err, tc.want, tc.msg)
		}
	}
	// Allowed ones get past the checks (and fail later, with no mounter).
	for _, vc := range []map[string]string{minio, {"bucket": "any", "endpoint": "s3.example.com"}} {
		if _, err := on.checkInline(req(vc, secrets)); err != nil {
			t.Errorf("checkInline(%v): %v", vc, err)
		}
	}
}

func TestParseInlineRule(t *testing.T) {
	for in, want := range map[string]string{
		"aws/models": "aws/models", "s3.example.com/*": "s3.example.com/*", "https://s3.example.com:9000/ddd": "s3.example.com:9000/ddd",
		"http://minio.minio:9000/*": "http://minio.minio:9000/*",
	} {
		r, err := ParseInlineRule(in)
		if err != nil || r.String() != want {
			t.Errorf("ParseInlineRule(%q) = %v, %v; want %s", in, r, err, want)
		}
	}
	for _, bad := range []string{"", "data", "/data", "aws/", "http://minio:9000/", "ftp://h/b", "http://h/x/y", "h:0/data"} {
		if r, err := ParseInlineRule(bad); err == nil {
			t.Errorf("ParseInlineRule(%q) = %v, want an error", bad, r)
		}
	}
}

// TestPathsOutsideKubeletDir: staging and target paths must lie inside the
// kubelet's directory, after resolving symbolic links in their directories;
// others are refused before anything is mounted, created or removed.
func TestPathsOutsideKubeletDir(t *testing.T) {
	kubelet := t.TempDir()
	s := newTestServer(t, kubelet)
	outside := t.TempDir()
	// A symbolic link inside the kubelet's directory that leads out of it.
	if err := os.Symlink(outside, filepath.Join(kubelet, "escape")); err != nil {
		t.Fatal(err)
	}
	// A target that is itself a symbolic link out (mount(2) would follow it).
	if err := os.Symlink(outside, filepath.Join(kubelet, "link-out")); err != nil {
		t.Fatal(err)
	}
	vcap := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
	}
	vc := map[string]string{"bucket": "data"}
	inside := filepath.Join(kubelet, "plugins", "kubernetes.io", "csi", "staging")
	for _, p := range []string{"/etc", outside + "/x", kubelet + "/../etc", kubelet, filepath.Join(kubelet, "escape", "mount"), filepath.Join(kubelet, "link-out"), kubelet + "x/mount"} {
		_, err := s.NodeStageVolume(context.Background(), &csi.NodeStageVolumeRequest{
			VolumeId: "v", StagingTargetPath: p, VolumeCapability: vcap, VolumeContext: vc})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "kubelet") {
			t.Errorf("stage on %s: %v, want InvalidArgument naming the kubelet's directory", p, err)
		}
		_, err = s.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
			VolumeId: "v", StagingTargetPath: inside, TargetPath: p, VolumeCapability: vcap, VolumeContext: vc})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "target_path") {
			t.Errorf("publish on %s: %v, want InvalidArgument naming target_path", p, err)
		}
		_, err = s.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
			VolumeId: "v", StagingTargetPath: p, TargetPath: filepath.Join(kubelet, "pods", "t"), VolumeCapability: vcap, VolumeContext: vc})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "staging_target_path") {
			t.Errorf("publish from %s: %v, want InvalidArgument naming staging_target_path", p, err)
		}
		_, err = s.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: "v", TargetPath: p})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("unpublish of %s: %v, want InvalidArgument", p, err)
		}
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("a directory outside the kubelet's was removed: %v", err)
	}
}
