package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/fusefd"
)

// unmarkedEphemeral explains the most likely cause of a publish without a
// staging path: an inline ephemeral volume the kubelet did not mark as one.
const unmarkedEphemeral = "if this is an inline ephemeral volume, the CSIDriver object needs podInfoOnMount: true " +
	"(only then does the kubelet set " + ephemeralKey + ")"

// NodePublishVolume bind-mounts the staged volume on target_path (created
// if missing) and makes the bind read-only, whatever readonly and the access
// mode say: hoard volumes are read-only. The target is recorded with the
// volume, so that the restore loop can bind it again after the mounter
// restarts.
//
// Inline ephemeral volumes (volume_context["csi.storage.k8s.io/ephemeral"]
// is "true"; no staging path) are off unless the operator allowed their
// endpoint and bucket (--inline-volume-allow), and need a node-publish
// Secret: they are never read with the node's own identity (see
// checkInline). They are staged first into a private directory under the
// state directory, with the node-publish secrets, and unstaged again by
// their last NodeUnpublishVolume.
//
// Required: volume_id, target_path (absolute, inside the kubelet's
// directory, --kubelet-dir), volume_capability (as for NodeStageVolume), and
// staging_target_path where NodeStageVolume staged the volume (except for
// ephemeral volumes). Idempotent: a target that already
// shows this volume's staging mount answers OK; one that shows a dead mount
// of this volume (its FUSE server gone) gets the live one bound over it.
//
// Codes: INVALID_ARGUMENT for a missing or malformed field, a path outside
// the kubelet's directory, or an inline volume without a Secret;
// PERMISSION_DENIED for an inline volume of an endpoint or bucket the
// operator did not allow;
// FAILED_PRECONDITION when the volume is not staged at staging_target_path
// (or staging_target_path is missing) or the capability is not supported;
// ALREADY_EXISTS when target_path has another mount; UNAVAILABLE while the
// staging mount is broken (the restore loop is mounting it again; retry);
// ABORTED while another call on the volume is running; for ephemeral
// volumes FAILED_PRECONDITION when inline volumes are off, and the codes of
// NodeStageVolume.
func (s *Server) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target, staging := req.GetVolumeId(), req.GetTargetPath(), req.GetStagingTargetPath()
	if err := required("volume_id", id); err != nil {
		return nil, err
	}
	if err := s.kubeletPath("target_path", target); err != nil {
		return nil, err
	}
	ephemeral := req.GetVolumeContext()[ephemeralKey] == "true"
	vcap := req.GetVolumeCapability()
	if err := checkCapability(vcap, s.cfg.AcceptSingleNodeWriter, ephemeral); err != nil {
		if !ephemeral && staging == "" && vcap != nil {
			// The kubelet asks for SINGLE_NODE_WRITER for inline volumes.
			err = status.Error(status.Code(err), status.Convert(err).Message()+"; "+unmarkedEphemeral)
		}
		return nil, err
	}
	if ephemeral {
		if _, err := s.checkInline(req); err != nil {
			return nil, err
		}
	} else {
		if staging == "" {
			return nil, status.Error(codes.FailedPrecondition,
				"staging_target_path is required: hoard stages volumes (STAGE_UNSTAGE_VOLUME); call NodeStageVolume first; "+unmarkedEphemeral)
		}
		if err := s.kubeletPath("staging_target_path", staging); err != nil {
			return nil, err
		}
	}
	target = filepath.Clean(target)
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()

	var st *volumeState
	if ephemeral {
		st, err = s.publishEphemeral(ctx, req)
		if err != nil {
			return nil, err
		}
	} else {
		st = s.state.get(id)
	}
	if st == nil || (!ephemeral && st.StagingPath != filepath.Clean(staging)) {
		return nil, status.Errorf(codes.FailedPrecondition,
			"volume %q is not staged at %s on this node: call NodeStageVolume first", id, staging)
	}
	if err := s.checkStaged(ctx, st); err != nil {
		return nil, err
	}
	return s.publish(ctx, st, req)
}

// publish binds st's staging mount on the request's target_path and records
// the target. The caller holds the volume's lock and has checked that the
// staging mount is live.
func (s *Server) publish(ctx context.Context, st *volumeState, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target, vcap := st.VolumeID, filepath.Clean(req.GetTargetPath()), req.GetVolumeCapability()
	stack, err := s.pathMounts(target)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "volume %q: %v", id, err)
	}
	if t := top(stack); t != nil {
		if t.Device == st.Device {
			if !st.hasTarget(target) {
				st.addTarget(target)
				if err := s.state.put(st); err != nil {
					return nil, status.Errorf(codes.Internal, "volume %q: %v", id, err)
				}
			}
			return &csi.NodePublishVolumeResponse{}, nil
		}
		if !t.IsHoard() || !st.hasTarget(target) {
			return nil, status.Errorf(codes.AlreadyExists,
				"target_path %s already has another mount (%s from %q)", target, t.FsType, t.Source)
		}
		// A dead bind of this volume (published before its mounter died):
		// bind the live staging mount over it below.
	} else if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Errorf(codes.Internal, "volume %q: creating target_path: %v", id, err)
	}

	// Recorded before the bind: a plugin that dies in between still knows
	// the target (unpublish cleans it up; a record without a mount is
	// harmless).
	if !st.hasTarget(target) {
		st.addTarget(target)
		if err := s.state.put(st); err != nil {
			return nil, status.Errorf(codes.Internal, "volume %q: %v", id, err)
		}
	}
	if err := s.bindTarget(st, target); err != nil {
		st.removeTarget(target)
		if perr := s.state.put(st); perr != nil {
			s.log.Warn("node: recording a failed publish", "volume", id, "error", perr)
		}
		return nil, status.Errorf(codes.Internal, "volume %q: %v", id, err)
	}
	if isWriterMode(vcap.GetAccessMode().GetMode()) || !req.GetReadonly() {
		s.log.Debug("node: published read-only (hoard volumes are read-only)", "volume", id,
			"access_mode", describeMode(vcap), "readonly_requested", req.GetReadonly())
	}
	s.log.Info("node: volume published", "volume", id, "target", target, "ephemeral", st.Ephemeral)
	return &csi.NodePublishVolumeResponse{}, nil
}

// NodeUnpublishVolume unmounts every hoard mount stacked on target_path
// (lazily when dead or busy, so that a broken mount after a mounter crash or
// a node drain never fails the call) and removes the directory. For an
// inline ephemeral volume the last unpublish also unstages it.
//
// Required: volume_id, target_path. Idempotent: a missing target, or one
// with nothing mounted, answers OK. Codes: INVALID_ARGUMENT for a missing
// field; INTERNAL when unmounting or removing fails (a foreign mount on the
// path is left alone and reported); ABORTED while another call on the
// volume is running.
func (s *Server) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	if err := required("volume_id", id); err != nil {
		return nil, err
	}
	if err := s.kubeletPath("target_path", target); err != nil {
		return nil, err
	}
	target = filepath.Clean(target)
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()

	st := s.state.get(id)
	stack, err := s.pathMounts(target)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "volume %q: %v", id, err)
	}
	t := top(stack)
	lazy := t != nil && (st == nil || t.Device != st.Device || len(stack) > 1)
	if t != nil && !lazy {
		// Our live bind: lazily only if a departed pod still holds it.
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		state, _ := s.mounts.Check(cctx, target)
		cancel()
		lazy = state != fusefd.Healthy
	}
	if err := s.unmountHoard(target, lazy); err != nil {
		return nil, status.Errorf(codes.Internal, "volume %q: unmounting target_path: %v", id, err)
	}
	if err := removeDir(target); err != nil {
		return nil, status.Errorf(codes.Internal, "volume %q: removing target_path: %v", id, err)
	}
	if st != nil && st.hasTarget(target) {
		st.removeTarget(target)
		if st.Ephemeral && len(st.Targets) == 0 {
			if err := s.unstage(ctx, st); err != nil {
				return nil, err
			}
		} else if err := s.state.put(st); err != nil {
			return nil, status.Errorf(codes.Internal, "volume %q: %v", id, err)
		}
	}
	s.log.Info("node: volume unpublished", "volume", id, "target", target)
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// checkStaged fails unless st's staging mount is the recorded one and its
// server answers.
func (s *Server) checkStaged(ctx context.Context, st *volumeState) error {
	state, t, err := s.inspect(ctx, st.StagingPath)
	switch {
	case err != nil:
		return status.Errorf(codes.Unavailable, "volume %q: staging mount at %s: %v", st.VolumeID, st.StagingPath, err)
	case state == fusefd.Broken:
		return status.Errorf(codes.Unavailable,
			"volume %q: the staging mount's FUSE server is gone (the mounter restarted?); the node plugin is mounting it again, retry", st.VolumeID)
	case state != fusefd.Healthy || t == nil || !t.IsHoard():
		return status.Errorf(codes.FailedPrecondition, "volume %q is not staged at %s (nothing mounted there): call NodeStageVolume first",
			st.VolumeID, st.StagingPath)
	case t.Device != st.Device:
		return status.Errorf(codes.Unavailable, "volume %q: the mount at %s is not the one recorded (device %s, recorded %s); retry",
			st.VolumeID, st.StagingPath, t.Device, st.Device)
	}
	return nil
}

// bindTarget makes target show st's live staging mount. A target that shows
// a dead mount of the volume keeps its lowest layer, the bind the CO gave to
// containers, and gets the live mount bound over it: a container whose
// volume mount is a slave of that layer (mountPropagation HostToContainer)
// then sees the live one too. Dead layers above the lowest (from earlier
// restores) are unmounted first, so a target holds at most two.
func (s *Server) bindTarget(st *volumeState, target string) error {
	for range maxLayers {
		stack, err := s.pathMounts(target)
		if err != nil {
			return err
		}
		t := top(stack)
		switch {
		case t != nil && t.Device == st.Device:
			// Live already: propagation from a peer did it.
			return nil
		case t != nil && t.IsHoard() && len(stack) > 1:
			if err := s.mounts.Unmount(target, true); err != nil {
				return fmt.Errorf("removing a dead layer from %s: %w", target, err)
			}
			continue
		}
		return s.mounts.BindReadOnly(st.StagingPath, target)
	}
	return fmt.Errorf("%s: still %d or more mounts stacked on it", target, maxLayers)
}
