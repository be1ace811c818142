package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/fusefd"
	"hoard.dev/hoard/node/mounter"
	"hoard.dev/hoard/node/nodetest"
)

// fakeNode is the node service on a fake mount table and mounter: its
// logic, without root.
type fakeNode struct {
	*Server
	mounts            *nodetest.Mounts
	mounter           *nodetest.Mounter
	kubelet, stateDir string
	staging, t1, t2   string
}

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	kubelet := t.TempDir()
	m, mt := nodetest.New()
	n := &fakeNode{mounts: m, mounter: mt, kubelet: kubelet, stateDir: filepath.Join(t.TempDir(), "state"),
		staging: filepath.Join(kubelet, "plugins", "kubernetes.io", "csi", "csi.hoard.dev", "v1", "globalmount"),
		t1:      filepath.Join(kubelet, "pods", "p1", "volumes", "kubernetes.io~csi", "pv", "mount"),
		t2:      filepath.Join(kubelet, "pods", "p2", "volumes", "kubernetes.io~csi", "pv", "mount")}
	n.restart(t)
	return n
}

// restart makes a new service on the same state, mounts and mounter, as a
// restarted plugin process.
func (n *fakeNode) restart(t *testing.T) {
	t.Helper()
	s, err := New(Config{NodeID: "n", StateDir: n.stateDir, KubeletDir: n.kubelet, Mounts: n.mounts, Mounter: n.mounter})
	if err != nil {
		t.Fatal(err)
	}
	n.Server = s
}

var readerCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
}

func (n *fakeNode) stage(id string) error {
	_, err := n.NodeStageVolume(context.Background(), &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: n.staging,
		VolumeCapability: readerCap, VolumeContext: map[string]string{"bucket": "data", "prefix": "ds"},
		Secrets: map[string]string{"accessKeyID": "AK", "secretAccessKey": "SK"}})
	return err
}

func (n *fakeNode) publish(id, target string) error {
	_, err := n.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: n.staging,
		TargetPath: target, VolumeCapability: readerCap, Readonly: true})
	return err
}

func (n *fakeNode) unpublish(id, target string) error {
	_, err := n.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
	return err
}

func (n *fakeNode) unstage(id string) error {
	_, err := n.NodeUnstageVolume(context.Background(), &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: n.staging})
	return err
}

// stack is what the fake table shows on p, bottom first.
func (n *fakeNode) stack(t *testing.T, p string) []fusefd.MountInfo {
	t.Helper()
	table, _ := n.mounts.List()
	return stackAt(table, resolve(p, table))
}

func (n *fakeNode) state(t *testing.T, p string) fusefd.State {
	t.Helper()
	st, err := n.mounts.Check(context.Background(), p)
	if err != nil {
		t.Fatalf("check %s: %v", p, err)
	}
	return st
}

// TestNodeLifecycle: stage, publish twice, idempotent repeats, stats and
// health, a plugin restart that changes nothing, unpublish and unstage, and
// repeats of both: on the fake mount table, without root.
func TestNodeLifecycle(t *testing.T) {
	n := newFakeNode(t)
	for range 2 {
		if err := n.stage("vol1"); err != nil {
			t.Fatalf("stage: %v", err)
		}
	}
	if got := n.mounts.Calls("MountFUSE"); got != 1 {
		t.Fatalf("%d FUSE mounts after two stages, want 1", got)
	}
	for _, target := range []string{n.t1, n.t2, n.t1} {
		if err := n.publish("vol1", target); err != nil {
			t.Fatalf("publish %s: %v", target, err)
		}
	}
	staging := n.stack(t, n.staging)
	if len(staging) != 1 || n.state(t, n.staging) != fusefd.Healthy {
		t.Fatalf("staging stack %+v", staging)
	}
	for _, target := range []string{n.t1, n.t2} {
		if s := n.stack(t, target); len(s) != 1 || s[0].Device != staging[0].Device {
			t.Fatalf("target %s shows %+v, want one bind of %s", target, s, staging[0].Device)
		}
	}
	stats, err := n.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: "vol1", VolumePath: n.t1})
	if err != nil || len(stats.GetUsage()) != 2 {
		t.Fatalf("stats: %v, %v", stats, err)
	}
	if abnormal, _, ok := LegacyCondition(stats); !ok || abnormal {
		t.Errorf("stats of a healthy volume: abnormal %t (condition set %t)", abnormal, ok)
	}
	h, err := n.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: "vol1", VolumePublishPath: n.t2})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) != 0 {
		t.Errorf("health: %v, %v", h, err)
	}

	// A restarted plugin takes its volumes over and mounts nothing new.
	n.restart(t)
	if err := n.stage("vol1"); err != nil {
		t.Fatal(err)
	}
	if err := n.publish("vol1", n.t1); err != nil {
		t.Fatal(err)
	}
	if got := n.mounts.Calls("MountFUSE"); got != 1 {
		t.Errorf("%d FUSE mounts after a restart, want 1", got)
	}

	// Another volume cannot stage on the same path.
	if err := n.stage("vol2"); status.Code(err) != codes.AlreadyExists {
		t.Errorf("a second volume on the staging path: %v, want AlreadyExists", err)
	}

	for range 2 {
		for _, target := range []string{n.t1, n.t2} {
			if err := n.unpublish("vol1", target); err != nil {
				t.Fatalf("unpublish %s: %v", target, err)
			}
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("target %s left behind: %v", target, err)
			}
		}
		if err := n.unstage("vol1"); err != nil {
			t.Fatalf("unstage: %v", err)
		}
	}
	if table, _ := n.mounts.List(); len(table) != 0 {
		t.Errorf("mounts left: %+v", table)
	}
	if v := n.Server.state.all(); len(v) != 0 {
		t.Errorf("state records left: %v", v)
	}
}

// TestNodeRestoresAfterMounterCrash: the mounter dies (every connection
// Broken); stats and health say so; when a mounter runs again one restore
// pass mounts the staging path again and binds the live mount over each
// target, keeping the dead bottom layer a HostToContainer container holds.
func TestNodeRestoresAfterMounterCrash(t *testing.T) {
	n := newFakeNode(t)
	if err := n.stage("vol1"); err != nil {
		t.Fatal(err)
	}
	if err := n.publish("vol1", n.t1); err != nil {
		t.Fatal(err)
	}
	before := n.stack(t, n.staging)[0].Device

	n.mounter.KillMounter()
	if st := n.state(t, n.t1); st != fusefd.Broken {
		t.Fatalf("target after the mounter died: %v, want Broken", st)
	}
	stats, err := n.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: "vol1", VolumePath: n.t1})
	if abnormal, _, _ := LegacyCondition(stats); err != nil || !abnormal {
		t.Errorf("stats of a broken volume: abnormal %t, %v", abnormal, err)
	}
	h, err := n.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: "vol1"})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) != 1 ||
		h.GetVolumeHealth().GetHealthStatuses()[0].GetReason() != reasonServerGone {
		t.Errorf("health of a broken volume: %v, %v", h, err)
	}
	if err := n.publish("vol1", n.t2); status.Code(err) != codes.Unavailable {
		t.Errorf("publish while broken: %v, want Unavailable", err)
	}

	// No mounter yet: the pass touches nothing.
	n.restorePass(context.Background())
	if got := n.mounts.Calls("MountFUSE"); got != 1 {
		t.Fatalf("restore without a mounter mounted (%d mounts)", got)
	}
	n.mounter.StartMounter()
	n.restorePass(context.Background())
	staging := n.stack(t, n.staging)
	if len(staging) != 1 || staging[0].Device == before || n.state(t, n.staging) != fusefd.Healthy {
		t.Fatalf("staging after restore: %+v (was device %s)", staging, before)
	}
	t1 := n.stack(t, n.t1)
	if len(t1) != 2 || t1[0].Device != before || t1[1].Device != staging[0].Device || n.state(t, n.t1) != fusefd.Healthy {
		t.Fatalf("target after restore: %+v, want the dead bind under a live one", t1)
	}
	// A second crash and restore keeps two layers at most.
	n.mounter.KillMounter()
	n.mounter.StartMounter()
	n.restorePass(context.Background())
	if t1 := n.stack(t, n.t1); len(t1) != 2 || n.state(t, n.t1) != fusefd.Healthy {
		t.Fatalf("target after a second restore: %+v", t1)
	}
	if err := n.unpublish("vol1", n.t1); err != nil {
		t.Fatal(err)
	}
	if err := n.unstage("vol1"); err != nil {
		t.Fatal(err)
	}
	if table, _ := n.mounts.List(); len(table) != 0 {
		t.Errorf("mounts left: %+v", table)
	}
}

// TestStageRefusedLeavesNothing: a mounter that refuses the volume (a
// bucket that cannot be listed) fails the stage with its code and leaves
// neither a mount nor a record.
func TestStageRefusedLeavesNothing(t *testing.T) {
	n := newFakeNode(t)
	n.mounter.Refuse = &mounter.Error{Code: codes.NotFound, Msg: "the bucket does not exist"}
	if err := n.stage("vol1"); status.Code(err) != codes.NotFound {
		t.Fatalf("stage: %v, want NotFound", err)
	}
	if table, _ := n.mounts.List(); len(table) != 0 {
		t.Errorf("mounts left: %+v", table)
	}
	if v := n.Server.state.all(); len(v) != 0 {
		t.Errorf("records left: %v", v)
	}
	n.mounter.Refuse = nil
	n.mounter.KillMounter()
	if err := n.stage("vol1"); status.Code(err) != codes.Unavailable {
		t.Errorf("stage without a mounter: %v, want Unavailable", err)
	}
}

// TestRestoreBacksOff: a restore that fails is not tried again at once, but
// after a backoff that grows (from two restore intervals up to a minute).
func TestRestoreBacksOff(t *testing.T) {
	n := newFakeNode(t)
	if err := n.stage("vol1"); err != nil {
		t.Fatal(err)
	}
	n.mounter.KillMounter()
	n.mounter.StartMounter()
	n.mounter.Refuse = &mounter.Error{Code: codes.Unavailable, Msg: "store down"}
	n.restorePass(context.Background())
	mounts := n.mounts.Calls("MountFUSE")
	n.restorePass(context.Background())
	if got := n.mounts.Calls("MountFUSE"); got != mounts {
		t.Fatalf("a failed restore was tried again at once (%d mounts, then %d)", mounts, got)
	}
	n.mu.Lock()
	rs := n.restores["vol1"]
	first := time.Until(rs.next)
	n.mu.Unlock()
	if rs.failures != 1 || first < n.cfg.RestoreInterval || first > 3*n.cfg.RestoreInterval {
		t.Fatalf("after one failure: %d failures, next try in %v (interval %v)", rs.failures, first, n.cfg.RestoreInterval)
	}
	// Due again: it fails again and waits longer.
	n.mu.Lock()
	rs.next = time.Now()
	n.mu.Unlock()
	n.restorePass(context.Background())
	n.mu.Lock()
	second := time.Until(rs.next)
	n.mu.Unlock()
	if rs.failures != 2 || second <= first {
		t.Errorf("after two failures: %d failures, next try in %v (first %v)", rs.failures, second, first)
	}
	// Once it succeeds the volume is served and its failures forgotten.
	n.mounter.Refuse = nil
	n.mu.Lock()
	rs.next = time.Now()
	n.mu.Unlock()
	n.restorePass(context.Background())
	if st := n.state(t, n.staging); st != fusefd.Healthy {
		t.Fatalf("after the store came back: %v", st)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.restores["vol1"] != nil {
		t.Error("failures remembered after a successful restore")
	}
}
