package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/volume"
)

// Defaults of Config.
const (
	DefaultCheckTimeout  = 30 * time.Second
	DefaultDeleteTimeout = 5 * time.Minute
)

// Config configures the controller.
type Config struct {
	// AcceptSingleNodeWriter accepts the SINGLE_NODE_WRITER access mode
	// (Kubernetes ReadWriteOnce) besides the read-only ones. The volume is
	// still read-only: writes fail with EROFS in the pod. Off by default, so
	// that a claim that asks to write is refused at provisioning instead of
	// failing later; turn it on for workloads that insist on ReadWriteOnce
	// claims for data they only read, and for csi-sanity, which creates every
	// volume as SINGLE_NODE_WRITER.
	AcceptSingleNodeWriter bool
	// CABundle is a PEM file of extra CAs to trust for S3 endpoints; empty
	// means $AWS_CA_BUNDLE, if set.
	CABundle string
	// CheckTimeout bounds CreateVolume's check of the bucket when the CO's
	// call has no deadline (default DefaultCheckTimeout).
	CheckTimeout time.Duration
	// DeleteTimeout bounds one DeleteVolume that deletes objects when the
	// CO's call has no deadline (default DefaultDeleteTimeout). Deletion
	// that does not finish in time fails with DEADLINE_EXCEEDED and carries
	// on where it stopped when the CO retries.
	DeleteTimeout time.Duration
	// IDKeys sign and check the IDs of deletePolicy=delete volumes (an
	// HMAC, so that a forged ID cannot make DeleteVolume delete another
	// prefix). nil: such volumes cannot be created, and their IDs are not
	// checked (DeleteVolume fails with FAILED_PRECONDITION).
	IDKeys *volume.IDKeys
	// OpenBucket, if set, opens buckets instead of S3 (tests: a local
	// directory per bucket, ufs.Local).
	OpenBucket func(ctx context.Context, name string, cfg ufs.S3Config) (Bucket, error)
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Controller serves the CSI Controller service. It keeps no state: a volume
// ID says everything DeleteVolume needs (see the package comment).
type Controller struct {
	csi.UnimplementedControllerServer
	cfg Config
	log *slog.Logger
}

var _ csi.ControllerServer = (*Controller)(nil)

// New returns a controller.
func New(cfg Config) *Controller {
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	if cfg.DeleteTimeout <= 0 {
		cfg.DeleteTimeout = DefaultDeleteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Controller{cfg: cfg, log: cfg.Logger.With("component", "csi-controller")}
}

// withTimeout bounds ctx by d unless the CO set a deadline already.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// CreateVolume provisions a volume: for provisioning=prefix a new prefix in
// the StorageClass's bucket, for provisioning=bucket the bucket (or the
// StorageClass's prefix of it) itself. It writes nothing to the bucket; it
// checks that the bucket exists and the credentials may list it, with one
// LIST of at most one key.
//
// Required: name; volume_capabilities, each a mount (not block) with a
// read-only access mode (SINGLE_NODE_READER_ONLY, MULTI_NODE_READER_ONLY;
// SINGLE_NODE_WRITER too if Config.AcceptSingleNodeWriter); parameter
// bucket. Not supported (INVALID_ARGUMENT): volume_content_source (no
// snapshots or clones), mutable_parameters.
//
// Idempotent and stateless: the same name and parameters give the same
// volume ID and context, every time, on any replica. capacity_bytes is 0,
// which CSI defines as "unknown": a bucket prefix has no size of its own, and
// Kubernetes records the claim's requested size in the PV instead. Any
// capacity_range is accepted (required <= limit), since nothing limits a
// prefix.
//
// Errors: INVALID_ARGUMENT for a missing or malformed field, parameter or
// secret (the message names it); NOT_FOUND when the bucket does not exist;
// UNAUTHENTICATED when the store rejects the credentials; PERMISSION_DENIED
// when it denies the listing; UNAVAILABLE when it cannot be reached (the
// mapping is volume.BucketStatus, the node's too).
func (c *Controller) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	name := req.GetName()
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := c.checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if err := checkCapacity(req.GetCapacityRange()); err != nil {
		return nil, err
	}
	if req.GetVolumeContentSource() != nil {
		return nil, status.Error(codes.InvalidArgument, "volume_content_source: hoard volumes cannot be created from snapshots or other volumes")
	}
	if len(req.GetMutableParameters()) > 0 {
		return nil, status.Error(codes.InvalidArgument, "mutable_parameters: not supported (no MODIFY_VOLUME capability)")
	}
	p, err := parseParams(req.GetParameters())
	if err != nil {
		return nil, err
	}
	vc, id, err := placeVolume(name, p, c.cfg.IDKeys)
	if err != nil {
		return nil, err
	}
	cfg, err := withCredentials(vc.S3Config(), req.GetSecrets())
	if err != nil {
		return nil, err
	}

	ctx, cancel := withTimeout(ctx, c.cfg.CheckTimeout)
	defer cancel()
	b, err := c.openBucket(ctx, vc.Bucket, cfg)
	if err != nil {
		return nil, err
	}
	if err := ufs.Probe(ctx, b, vc.Prefix); err != nil {
		return nil, volume.BucketStatus("checking bucket "+vc.Bucket, err)
	}
	c.log.InfoContext(ctx, "volume provisioned", "name", name, "volume_id", id,
		"source", sourceOf(b, vc.Prefix), "provisioning", p.provisioning, "delete_policy", p.deletePolicy)
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      id,
		CapacityBytes: 0,
		VolumeContext: vc.Map(),
	}}, nil
}

// DeleteVolume deprovisions a volume. For provisioning=bucket and for
// deletePolicy=retain it touches nothing. For provisioning=prefix with
// deletePolicy=delete it deletes every object under exactly the volume's
// prefix followed by "/" (never a sibling that merely starts with the same
// characters), one page of at most 1000 keys at a time.
//
// Required: volume_id. Idempotent: an ID that is not a hoard volume ID, a
// volume already deleted, a prefix with nothing left under it and a bucket
// that no longer exists all succeed, as the spec asks for a volume that does
// not exist. Deleting many objects may take longer than the CO waits: the
// call then fails with DEADLINE_EXCEEDED (or after Config.DeleteTimeout if
// the CO set no deadline), and the CO's retry carries on with what is left.
//
// Errors: INVALID_ARGUMENT for a missing volume_id or malformed secrets;
// UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE as for CreateVolume.
func (c *Controller) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id: required")
	}
	v, err := volume.ParseID(id, c.cfg.IDKeys)
	switch {
	case errors.Is(err, volume.ErrNoIDKey):
		return nil, status.Errorf(codes.FailedPrecondition,
			"volume_id %q: deleting its objects needs the controller's volume ID key to check the ID (hoard csi --volume-id-key-file); nothing deleted", id)
	case err != nil:
		c.log.WarnContext(ctx, "DeleteVolume of an ID this controller did not make (or altered, or signed with a key it does not hold); nothing to delete",
			"volume_id", id)
		return &csi.DeleteVolumeResponse{}, nil
	case !v.DeleteData:
		return &csi.DeleteVolumeResponse{}, nil
	case v.Unverified:
		c.log.WarnContext(ctx, "DeleteVolume of a volume ID of the old, unkeyed form: anyone could have written it, so its objects are kept; delete them by hand if the volume was yours",
			"volume_id", id, "bucket", v.Bucket, "prefix", v.Prefix)
		return &csi.DeleteVolumeResponse{}, nil
	}
	cfg, err := withCredentials(ufs.S3Config{Endpoint: v.Endpoint, Region: v.Region, PathStyle: v.PathStyle, Insecure: v.Insecure}, req.GetSecrets())
	if err != nil {
		return nil, err
	}
	ctx, cancel := withTimeout(ctx, c.cfg.DeleteTimeout)
	defer cancel()
	b, err := c.openBucket(ctx, v.Bucket, cfg)
	if err != nil {
		return nil, err
	}
	where := sourceOf(b, v.Prefix)
	n, err := b.DeletePrefix(ctx, v.Prefix)
	switch {
	case errors.Is(err, ufs.ErrNoSuchBucket):
		c.log.InfoContext(ctx, "volume's bucket is gone; nothing to delete", "volume_id", id, "source", where)
		return &csi.DeleteVolumeResponse{}, nil
	case err != nil:
		return nil, volume.BucketStatus(fmt.Sprintf("deleting the objects of volume %s (%d deleted so far; a retry continues)", id, n), err)
	}
	c.log.InfoContext(ctx, "volume deleted with its objects", "volume_id", id, "source", where, "objects", n)
	return &csi.DeleteVolumeResponse{}, nil
}

// ValidateVolumeCapabilities confirms the capabilities if every one of them
// is supported (a mount with a read-only access mode, see CreateVolume), and
// otherwise answers without confirmation, with a message that says why.
//
// Required: volume_id, volume_capabilities. NOT_FOUND for an ID that is not
// a hoard volume ID; the controller keeps no state, so a well-formed ID is
// taken to exist (a prefix with nothing in it is still a valid, empty
// volume). parameters and volume_context, when given, must be valid
// (INVALID_ARGUMENT otherwise), and the volume context must name the ID's
// bucket and prefix when the ID has them.
func (c *Controller) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id: required")
	}
	caps := req.GetVolumeCapabilities()
	if len(caps) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume_capabilities: at least one is required")
	}
	v, err := volume.ParseID(id, c.cfg.IDKeys)
	switch {
	case errors.Is(err, volume.ErrNoIDKey):
		return nil, status.Errorf(codes.FailedPrecondition, "volume_id %q: checking it needs the controller's volume ID key (hoard csi --volume-id-key-file)", id)
	case err != nil:
		return nil, status.Errorf(codes.NotFound, "volume_id %q: no such volume (not a hoard volume ID)", id)
	}
	if len(req.GetParameters()) > 0 {
		if _, err := parseParams(req.GetParameters()); err != nil {
			return nil, err
		}
	}
	if vcm := req.GetVolumeContext(); len(vcm) > 0 {
		vc, err := volume.ParseContext(vcm)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "volume_context: %v", err)
		}
		if v.DeleteData && (vc.Bucket != v.Bucket || vc.Prefix != v.Prefix || vc.Endpoint != v.Endpoint) {
			return nil, status.Errorf(codes.InvalidArgument, "volume_context: names s3://%s/%s at %q, but the volume is s3://%s/%s at %q",
				vc.Bucket, vc.Prefix, vc.Endpoint, v.Bucket, v.Prefix, v.Endpoint)
		}
	}
	for i, vcap := range caps {
		reason, err := c.checkCapability(i, vcap)
		if err != nil {
			return nil, err
		}
		if reason != "" {
			return &csi.ValidateVolumeCapabilitiesResponse{Message: reason}, nil
		}
	}
	if len(req.GetMutableParameters()) > 0 {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: "mutable_parameters are not supported"}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: caps,
		Parameters:         req.GetParameters(),
	}}, nil
}

// ControllerGetCapabilities returns CREATE_DELETE_VOLUME: no attach step
// (nothing to attach; the node mounts by itself), no snapshots, clones,
// expansion or listing.
func (c *Controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: []*csi.ControllerServiceCapability{{
		Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{
			Type: csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		}},
	}}}, nil
}

// errReadOnly is why a writer access mode is refused.
const errReadOnly = "read-only volumes: the FUSE view does not support writes yet"

// checkCapabilities checks CreateVolume's capabilities: at least one, each
// supported; INVALID_ARGUMENT otherwise.
func (c *Controller) checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume_capabilities: at least one is required")
	}
	for i, vcap := range caps {
		reason, err := c.checkCapability(i, vcap)
		if err != nil {
			return err
		}
		if reason != "" {
			return status.Error(codes.InvalidArgument, reason)
		}
	}
	return nil
}

// checkCapability returns why the i-th capability is not supported ("" if it
// is), or INVALID_ARGUMENT if it is malformed.
func (c *Controller) checkCapability(i int, vcap *csi.VolumeCapability) (string, error) {
	field := fmt.Sprintf("volume_capabilities[%d]", i)
	if vcap == nil {
		return "", status.Errorf(codes.InvalidArgument, "%s: empty", field)
	}
	mode := vcap.GetAccessMode().GetMode()
	if mode == csi.VolumeCapability_AccessMode_UNKNOWN {
		return "", status.Errorf(codes.InvalidArgument, "%s.access_mode: required", field)
	}
	switch {
	case vcap.GetBlock() != nil:
		return fmt.Sprintf("%s: block access is not supported; hoard volumes are file systems (use a mount access type)", field), nil
	case vcap.GetMount() == nil:
		return "", status.Errorf(codes.InvalidArgument, "%s.access_type: required (mount)", field)
	}
	switch mode {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		return "", nil
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER:
		if c.cfg.AcceptSingleNodeWriter {
			return "", nil
		}
	}
	return fmt.Sprintf("%s.access_mode %s: %s (supported: %s)", field, mode, errReadOnly, c.supportedModes()), nil
}

func (c *Controller) supportedModes() string {
	s := "SINGLE_NODE_READER_ONLY, MULTI_NODE_READER_ONLY"
	if c.cfg.AcceptSingleNodeWriter {
		s += ", SINGLE_NODE_WRITER (published read-only)"
	}
	return s
}

// checkCapacity accepts any capacity range that makes sense.
func checkCapacity(r *csi.CapacityRange) error {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	switch {
	case req < 0 || lim < 0:
		return status.Error(codes.InvalidArgument, "capacity_range: negative bytes")
	case lim > 0 && req > lim:
		return status.Errorf(codes.InvalidArgument, "capacity_range: required_bytes %d exceeds limit_bytes %d", req, lim)
	}
	return nil
}
