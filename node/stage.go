package node

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/fusefd"
	"hoard.dev/hoard/node/mounter"
	"hoard.dev/hoard/volume"
)

// maxRead is the largest FUSE read request the mount allows: one cache
// page, and what fuseview negotiates.
const maxRead = 1 << 20

// NodeStageVolume mounts the volume on staging_target_path: the plugin opens
// /dev/fuse and mounts it there (read-only, allow_other,
// default_permissions, max_read 1 MiB, source "hoard:s3://bucket/prefix/"),
// hands the descriptor to the mounter, closes its own copy, and waits until
// the mounter serves it. It records the volume (context and secrets) in the
// state directory, so that the restore loop can serve it again if the
// mounter dies.
//
// Required: volume_id, staging_target_path (absolute, inside the kubelet's
// directory), volume_capability
// (mount; SINGLE_NODE_READER_ONLY or MULTI_NODE_READER_ONLY, or
// SINGLE_NODE_WRITER with --accept-single-node-writer, mounted read-only
// all the same), volume_context as the controller made it (bucket, prefix,
// endpoint, ...). secrets: the node-stage Secret (accessKeyID,
// secretAccessKey, sessionToken), or none for the mounter's ambient
// credentials.
//
// Idempotent: a staging path that already shows a healthy mount of this
// volume answers OK at once (and newer secrets are kept for restores); a
// broken one (its FUSE server gone) is unmounted and mounted again.
//
// Codes: INVALID_ARGUMENT for a missing or malformed field, volume context
// key or secret; FAILED_PRECONDITION for a capability hoard cannot serve,
// a volume staged at another path, or a foreign mount on the path;
// ALREADY_EXISTS when another hoard volume is mounted there; NOT_FOUND when
// the bucket does not exist; PERMISSION_DENIED when the store refuses the
// credentials; UNAVAILABLE when the mounter or the store cannot be reached;
// ABORTED while another call on the volume is running.
func (s *Server) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	if err := required("volume_id", id); err != nil {
		return nil, err
	}
	if err := s.kubeletPath("staging_target_path", staging); err != nil {
		return nil, err
	}
	vcap := req.GetVolumeCapability()
	if err := checkCapability(vcap, s.cfg.AcceptSingleNodeWriter, false); err != nil {
		return nil, err
	}
	if _, err := parseContext(req.GetVolumeContext()); err != nil {
		return nil, err
	}
	if _, err := credentials(req.GetSecrets()); err != nil {
		return nil, err
	}
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	want := &volumeState{
		VolumeID: id, StagingPath: filepath.Clean(staging),
		Context: maps.Clone(req.GetVolumeContext()), Secrets: maps.Clone(req.GetSecrets()),
		AccessMode: describeMode(vcap),
	}
	if err := s.stage(ctx, want); err != nil {
		return nil, err
	}
	if isWriterMode(vcap.GetAccessMode().GetMode()) {
		s.log.Info("node: staged with a writer access mode; mounted read-only (hoard volumes are read-only)",
			"volume", id, "access_mode", want.AccessMode)
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

// NodeUnstageVolume unmounts the staging mount (lazily when its server is
// gone or something still holds it), tells the mounter to drop the volume
// (best effort: the session ends by itself when the mount goes), and
// removes the volume's record.
//
// Required: volume_id, staging_target_path. Idempotent: a path with no
// mount, a broken mount (a node drain after the mounter died) and a volume
// staged elsewhere or never staged all answer OK. Codes: INVALID_ARGUMENT
// for a missing field, INTERNAL when the unmount fails (a foreign mount on
// the path is left alone and reported), ABORTED while another call on the
// volume is running.
func (s *Server) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	if err := required("volume_id", id); err != nil {
		return nil, err
	}
	if err := s.kubeletPath("staging_target_path", staging); err != nil {
		return nil, err
	}
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st := s.state.get(id)
	staging = filepath.Clean(staging)
	if st != nil && st.StagingPath != staging {
		s.log.Warn("node: unstage of a path the volume is not staged at; nothing to do",
			"volume", id, "path", staging, "staged_at", st.StagingPath)
		return &csi.NodeUnstageVolumeResponse{}, nil
	}
	if st == nil {
		st = &volumeState{VolumeID: id, StagingPath: staging}
	}
	if err := s.unstage(ctx, st); err != nil {
		return nil, err
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// stage makes want.StagingPath show a healthy hoard mount of want.VolumeID
// that the mounter serves, and records it. The caller holds the volume's
// lock.
func (s *Server) stage(ctx context.Context, want *volumeState) error {
	id := want.VolumeID
	old := s.state.get(id)
	if old != nil && old.StagingPath != want.StagingPath {
		stack, err := s.pathMounts(old.StagingPath)
		if err != nil {
			return status.Errorf(codes.Internal, "volume %q: %v", id, err)
		}
		if t := top(stack); t != nil && t.IsHoard() {
			return status.Errorf(codes.FailedPrecondition,
				"volume %q is already staged at %s; unstage it there first", id, old.StagingPath)
		}
		s.log.Warn("node: volume recorded at another staging path that has no mount; staging it here",
			"volume", id, "recorded", old.StagingPath, "staging_path", want.StagingPath)
		old = nil
	}
	if old != nil {
		want.Targets = old.Targets
	}

	state, t, err := s.inspect(ctx, want.StagingPath)
	if err != nil {
		return status.Errorf(codes.Unavailable, "volume %q: staging path %s: %v", id, want.StagingPath, err)
	}
	switch state {
	case fusefd.Healthy:
		return s.adopt(ctx, old, want, t)
	case fusefd.Broken:
		s.log.Warn("node: staging mount is broken (its FUSE server is gone); mounting it again",
			"volume", id, "staging_path", want.StagingPath)
		if err := s.unmountHoard(want.StagingPath, true); err != nil {
			return status.Errorf(codes.Internal, "volume %q: unmounting the broken staging mount: %v", id, err)
		}
	}

	// Record the intent first: a plugin that dies from here on finds the
	// volume in its state and can finish or undo.
	want.Device, want.Restoring = "", false
	if err := s.state.put(want); err != nil {
		return status.Errorf(codes.Internal, "volume %q: %v", id, err)
	}
	if err := s.mountAndServe(ctx, want, false); err != nil {
		if old == nil {
			if rerr := s.state.remove(id); rerr != nil {
				s.log.Warn("node: removing the record of a failed stage", "volume", id, "error", rerr)
			}
		}
		return err
	}
	if err := s.state.put(want); err != nil {
		return status.Errorf(codes.Internal, "volume %q: %v", id, err)
	}
	s.log.Info("node: volume staged", "volume", id, "staging_path", want.StagingPath, "device", want.Device,
		"ephemeral", want.Ephemeral)
	return nil
}

// adopt handles a staging path that already shows a healthy mount: this
// volume's (recorded, or served by the mounter for this volume and not yet
// recorded because the plugin died in between) answers OK; anything else is
// an error.
func (s *Server) adopt(ctx context.Context, old, want *volumeState, t *mountEntry) error {
	id := want.VolumeID
	if t == nil || !t.IsHoard() {
		what := "a mount"
		if t != nil {
			what = fmt.Sprintf("a %s mount from %q", t.FsType, t.Source)
		}
		return status.Errorf(codes.FailedPrecondition, "staging_target_path %s already has %s on it", want.StagingPath, what)
	}
	if old != nil && old.Device == t.Device {
		if !maps.Equal(old.Secrets, want.Secrets) {
			// Rotated credentials: the running session keeps the old
			// ones; a restore will use these.
			old.Secrets = want.Secrets
			if err := s.state.put(old); err != nil {
				return status.Errorf(codes.Internal, "volume %q: %v", id, err)
			}
		}
		return nil
	}
	owner, err := s.sessionVolume(ctx, t.Device)
	if err != nil {
		return mounterStatus(fmt.Sprintf("volume %q: finding what is mounted at %s", id, want.StagingPath), err)
	}
	if owner != id {
		if owner == "" {
			owner = "not served by this node's mounter"
		} else {
			owner = fmt.Sprintf("volume %q", owner)
		}
		return status.Errorf(codes.AlreadyExists, "staging_target_path %s already has another hoard mount (%s)", want.StagingPath, owner)
	}
	want.Device, want.Restoring = t.Device, false
	if err := s.state.put(want); err != nil {
		return status.Errorf(codes.Internal, "volume %q: %v", id, err)
	}
	s.log.Info("node: found the volume served at its staging path; recorded it", "volume", id,
		"staging_path", want.StagingPath, "device", t.Device)
	return nil
}

// sessionVolume asks the mounter which volume it serves on device; "" if
// none.
func (s *Server) sessionVolume(ctx context.Context, device string) (string, error) {
	resp, err := s.mounter.List(ctx)
	if err != nil {
		return "", err
	}
	for _, sess := range resp.Sessions {
		if sess.Device == device {
			return sess.VolumeID, nil
		}
	}
	return "", nil
}

// mountAndServe mounts a new FUSE connection on st.StagingPath, hands it to
// the mounter and sets st.Device. On failure nothing is left mounted. A
// restore (restore is true) is served even if the bucket cannot be listed at
// the moment.
func (s *Server) mountAndServe(ctx context.Context, st *volumeState, restore bool) error {
	id := st.VolumeID
	vc, err := parseContext(st.Context)
	if err != nil {
		return err
	}
	creds, err := credentials(st.Secrets)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(st.StagingPath, 0o750); err != nil {
		return status.Errorf(codes.Internal, "volume %q: creating the staging path: %v", id, err)
	}
	f, err := s.mounts.MountFUSE(st.StagingPath, fusefd.Options{
		FsName: "hoard:" + vc.Location().String(), ReadOnly: true,
		AllowOther: true, DefaultPermissions: true, MaxRead: maxRead,
	})
	if err != nil {
		return status.Errorf(codes.Internal, "volume %q: %v", id, err)
	}
	stack, err := s.pathMounts(st.StagingPath)
	t := top(stack)
	if err != nil || t == nil || !t.IsHoard() {
		f.Close()
		s.mounts.Unmount(st.StagingPath, true)
		return status.Errorf(codes.Internal, "volume %q: the new mount does not show in mountinfo at %s (%v)", id, st.StagingPath, err)
	}
	_, err = s.mounter.Serve(ctx, f, mounter.Request{ // closes f
		VolumeID: id, StagingPath: st.StagingPath, Device: t.Device,
		Source: &mounter.Source{
			Endpoint: vc.Endpoint, Region: vc.Region, Bucket: vc.Bucket, Prefix: vc.Prefix,
			PathStyle: vc.PathStyle, Insecure: vc.Insecure,
		},
		View: mounter.View{
			UID: vc.UID, GID: vc.GID, FileMode: uint32(vc.FileMode), DirMode: uint32(vc.DirMode),
			MetadataTTL: vc.MetadataTTL,
		},
		Credentials:  creds,
		CacheCluster: vc.CacheCluster,
		Restore:      restore,
	})
	if err != nil {
		if uerr := s.mounts.Unmount(st.StagingPath, true); uerr != nil {
			s.log.Warn("node: unmounting a staging mount the mounter did not take", "volume", id, "error", uerr)
		}
		return mounterStatus(fmt.Sprintf("volume %q", id), err)
	}
	st.Device = t.Device
	return nil
}

// unstage unmounts st's staging mount, drops it in the mounter and removes
// its record (and for an ephemeral volume its private directory). The
// caller holds the volume's lock.
func (s *Server) unstage(ctx context.Context, st *volumeState) error {
	id := st.VolumeID
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	state, _ := s.mounts.Check(cctx, st.StagingPath)
	cancel()
	if err := s.unmountHoard(st.StagingPath, state != fusefd.Healthy); err != nil {
		return status.Errorf(codes.Internal, "volume %q: unmounting the staging path: %v", id, err)
	}
	for _, t := range st.Targets {
		if stack, err := s.pathMounts(t); err == nil && len(stack) > 0 {
			s.log.Warn("node: volume unstaged while still published; the target keeps serving until unpublished",
				"volume", id, "target", t)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	remaining, err := s.mounter.Drop(dctx, id)
	cancel()
	switch {
	case err != nil:
		s.log.Debug("node: telling the mounter to drop the volume", "volume", id, "error", err)
	case remaining > 0:
		s.log.Info("node: the mounter still serves the unstaged volume (files still open)", "volume", id, "sessions", remaining)
	}
	if err := s.state.remove(id); err != nil {
		return status.Errorf(codes.Internal, "volume %q: %v", id, err)
	}
	if st.Ephemeral {
		if err := removeDir(st.StagingPath); err != nil {
			s.log.Warn("node: removing an ephemeral volume's staging directory", "volume", id, "error", err)
		}
	}
	s.log.Info("node: volume unstaged", "volume", id, "staging_path", st.StagingPath)
	return nil
}

// inspect says what is on path (see fusefd.CheckContext, bounded by 10 s)
// and which mount shows there.
func (s *Server) inspect(ctx context.Context, path string) (fusefd.State, *mountEntry, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	state, err := s.mounts.Check(cctx, path)
	if err != nil {
		return state, nil, err
	}
	stack, err := s.pathMounts(path)
	if err != nil {
		return fusefd.Unknown, nil, err
	}
	return state, top(stack), nil
}

// parseContext parses a volume context; errors are INVALID_ARGUMENT.
func parseContext(m map[string]string) (volume.Context, error) {
	vc, err := volume.ParseContext(m)
	if err != nil {
		return vc, status.Errorf(codes.InvalidArgument, "volume_context: %v", err)
	}
	return vc, nil
}
