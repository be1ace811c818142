package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"golang.org/x/sys/unix"

	"hoard.dev/hoard/fusefd"
)

// legacyVolumeCondition is the wire value of the VOLUME_CONDITION node
// capability, which CSI 1.13 (this module's spec version) removed together
// with NodeGetVolumeStatsResponse.volume_condition (field 2). COs built on
// an older spec, kubelets with the CSIVolumeHealth gate among them, still
// read both; newer ones ignore them and can call NodeGetVolumeHealth.
const legacyVolumeCondition csi.NodeServiceCapability_RPC_Type = 4

// Reasons of NodeGetVolumeHealth entries.
const (
	reasonServerGone    = "FUSEServerGone"
	reasonNotResponding = "FUSEServerNotResponding"
	reasonNotStaged     = "NotStaged"
	reasonNotPublished  = "NotPublished"
)

const msgServerGone = "the volume's FUSE server is gone (the hoard mounter exited or dropped the session): " +
	"reads fail with ENOTCONN; the node plugin is mounting it again"

// NodeGetVolumeStats reports the capacity of a staged or published volume
// from statfs(2) on volume_path, which FUSE forwards to the mounter: hoard
// reports a large, empty file system (a bucket has no size). When the
// volume's FUSE server is gone it answers OK without usage and with an
// abnormal volume condition saying so (in the legacy volume_condition field;
// see legacyVolumeCondition), rather than an error that only a log shows.
//
// Required: volume_id, volume_path. Codes: INVALID_ARGUMENT for a missing
// field; NOT_FOUND when the volume is not staged or published on this node
// or not at volume_path, or nothing is mounted there; INTERNAL when statfs
// fails otherwise.
func (s *Server) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id, p := req.GetVolumeId(), req.GetVolumePath()
	if err := required("volume_id", id); err != nil {
		return nil, err
	}
	if err := required("volume_path", p); err != nil {
		return nil, err
	}
	st := s.state.get(id)
	if st == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q is not staged or published on this node", id)
	}
	p = filepath.Clean(p)
	if p != st.StagingPath && !st.hasTarget(p) {
		return nil, status.Errorf(codes.NotFound, "volume %q is not at %s (staged at %s, published at %v)",
			id, p, st.StagingPath, st.Targets)
	}
	stack, err := s.pathMounts(p)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "volume %q: %v", id, err)
	}
	if t := top(stack); t == nil || !t.IsHoard() {
		return nil, status.Errorf(codes.NotFound, "volume %q: nothing of hoard's is mounted at %s", id, p)
	}
	// Check first: its probe is shared by concurrent callers, so a server
	// that hangs costs one blocked statfs, not one per call.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp := &csi.NodeGetVolumeStatsResponse{}
	state, err := s.mounts.Check(sctx, p)
	switch {
	case err != nil:
		setLegacyCondition(resp, true, fmt.Sprintf("the volume's FUSE server does not answer: %v", err))
		return resp, nil
	case state == fusefd.Broken:
		setLegacyCondition(resp, true, msgServerGone)
		return resp, nil
	case state == fusefd.NotMounted:
		return nil, status.Errorf(codes.NotFound, "volume %q: nothing is mounted at %s", id, p)
	}
	fs, err := s.mounts.Statfs(sctx, p)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "volume %q: statfs %s: %v", id, p, err)
	}
	bs := int64(fs.Bsize)
	resp.Usage = []*csi.VolumeUsage{{
		Unit:  csi.VolumeUsage_BYTES,
		Total: int64(fs.Blocks) * bs, Available: int64(fs.Bavail) * bs, Used: int64(fs.Blocks-fs.Bfree) * bs,
	}, {
		Unit:  csi.VolumeUsage_INODES,
		Total: int64(fs.Files), Available: int64(fs.Ffree), Used: int64(fs.Files - fs.Ffree),
	}}
	setLegacyCondition(resp, false, "served by the hoard mounter")
	return resp, nil
}

// NodeGetVolumeHealth reports what the node knows of a volume: nothing
// adverse while its staging mount (and volume_publish_path, if given)
// answers; INACCESSIBLE with reason FUSEServerGone when the FUSE server is
// gone (the restore loop is mounting it again), NotStaged when nothing is
// mounted, NotPublished when volume_publish_path does not show the live
// mount; DEGRADED with FUSEServerNotResponding when statfs times out.
//
// Required: volume_id. Codes: INVALID_ARGUMENT for a missing volume_id;
// NOT_FOUND when the volume is not staged on this node.
func (s *Server) NodeGetVolumeHealth(ctx context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	id := req.GetVolumeId()
	if err := required("volume_id", id); err != nil {
		return nil, err
	}
	st := s.state.get(id)
	if st == nil {
		return nil, status.Errorf(codes.NotFound, "volume %q is not staged on this node", id)
	}
	h := &csi.VolumeHealth{VolumeId: id}
	add := func(t csi.VolumeHealthErrorType, reason, msg string) {
		h.HealthStatuses = append(h.HealthStatuses, &csi.VolumeHealth_VolumeHealthEntry{Status: t, Reason: reason, Message: msg})
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	state, err := s.mounts.Check(cctx, st.StagingPath)
	cancel()
	switch {
	case err != nil:
		add(csi.VolumeHealthErrorType_DEGRADED, reasonNotResponding, fmt.Sprintf("staging mount at %s: %v", st.StagingPath, err))
	case state == fusefd.Broken:
		add(csi.VolumeHealthErrorType_INACCESSIBLE, reasonServerGone, msgServerGone)
	case state == fusefd.NotMounted:
		msg := "nothing is mounted at the staging path " + st.StagingPath
		if st.Restoring {
			msg += "; the node plugin is mounting it again"
		}
		add(csi.VolumeHealthErrorType_INACCESSIBLE, reasonNotStaged, msg)
	}
	if pp := req.GetVolumePublishPath(); pp != "" && state == fusefd.Healthy {
		stack, err := s.pathMounts(pp)
		if t := top(stack); err != nil || t == nil || t.Device != st.Device {
			add(csi.VolumeHealthErrorType_INACCESSIBLE, reasonNotPublished,
				fmt.Sprintf("%s does not show the volume's live mount (the node plugin binds it again if it is published)", pp))
		}
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: h}, nil
}

// NodeGetCapabilities: STAGE_UNSTAGE_VOLUME, GET_VOLUME_STATS,
// GET_VOLUME_HEALTH and the legacy VOLUME_CONDITION. Never fails.
func (s *Server) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		legacyVolumeCondition,
	} {
		caps = append(caps, &csi.NodeServiceCapability{
			Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: t}},
		})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// NodeGetInfo returns the node ID (--node-id), no volume limit and no
// topology: any node can reach a bucket. Never fails.
func (s *Server) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: s.cfg.NodeID}, nil
}

// setLegacyCondition sets NodeGetVolumeStatsResponse field 2, the
// VolumeCondition message of CSI before 1.13 ({bool abnormal = 1; string
// message = 2;}), as an unknown field: the Go types of 1.13 have no such
// field, but it is marshalled with the response and older COs decode it.
func setLegacyCondition(resp *csi.NodeGetVolumeStatsResponse, abnormal bool, msg string) {
	var cond []byte
	if abnormal {
		cond = protowire.AppendTag(cond, 1, protowire.VarintType)
		cond = protowire.AppendVarint(cond, 1)
	}
	cond = protowire.AppendTag(cond, 2, protowire.BytesType)
	cond = protowire.AppendString(cond, msg)
	var field []byte
	field = protowire.AppendTag(field, 2, protowire.BytesType)
	field = protowire.AppendBytes(field, cond)
	resp.ProtoReflect().SetUnknown(field)
}

// LegacyCondition decodes what setLegacyCondition set: ok is false when the
// response carries no condition. For tests and tools.
func LegacyCondition(resp *csi.NodeGetVolumeStatsResponse) (abnormal bool, msg string, ok bool) {
	b := resp.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, "", false
		}
		b = b[n:]
		if num != 2 || typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false, "", false
			}
			b = b[n:]
			continue
		}
		cond, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false, "", false
		}
		b = b[n:]
		ok = true
		for len(cond) > 0 {
			cnum, ctyp, cn := protowire.ConsumeTag(cond)
			if cn < 0 {
				return false, "", false
			}
			cond = cond[cn:]
			switch {
			case cnum == 1 && ctyp == protowire.VarintType:
				v, vn := protowire.ConsumeVarint(cond)
				if vn < 0 {
					return false, "", false
				}
				abnormal, cond = v != 0, cond[vn:]
			case cnum == 2 && ctyp == protowire.BytesType:
				v, vn := protowire.ConsumeString(cond)
				if vn < 0 {
					return false, "", false
				}
				msg, cond = v, cond[vn:]
			default:
				vn := protowire.ConsumeFieldValue(cnum, ctyp, cond)
				if vn < 0 {
					return false, "", false
				}
				cond = cond[vn:]
			}
		}
	}
	return abnormal, msg, ok
}

// statfs is statfs(2) bounded by ctx: a FUSE server that never answers
// leaves the goroutine blocked in the kernel, not the caller.
func statfs(ctx context.Context, p string) (unix.Statfs_t, error) {
	type result struct {
		st  unix.Statfs_t
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		r.err = unix.Statfs(p, &r.st)
		for errors.Is(r.err, unix.EINTR) {
			r.err = unix.Statfs(p, &r.st)
		}
		ch <- r
	}()
	select {
	case r := <-ch:
		return r.st, r.err
	case <-ctx.Done():
		return unix.Statfs_t{}, ctx.Err()
	}
}
