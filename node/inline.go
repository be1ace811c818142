package node

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/volume"
)

// InlineRule allows CSI inline ephemeral volumes of one endpoint and one
// bucket (or every bucket) of it. Parse one with ParseInlineRule.
type InlineRule struct {
	endpoint string // host[:port]; "" for Amazon S3
	insecure bool   // plain http
	bucket   string // a bucket name, or "*"
}

// ParseInlineRule reads ENDPOINT/BUCKET: ENDPOINT is host[:port] (https),
// http://host[:port] or https://host[:port], or "aws" for Amazon S3; BUCKET
// is a bucket name or "*" for every bucket of the endpoint.
func ParseInlineRule(s string) (InlineRule, error) {
	const want = `want ENDPOINT/BUCKET, e.g. s3.example.com/datasets, http://minio.minio:9000/*, aws/models`
	i := strings.LastIndex(s, "/")
	if i <= 0 || i == len(s)-1 || strings.HasSuffix(s[:i], ":/") {
		return InlineRule{}, fmt.Errorf("inline volume rule %q: %s", s, want)
	}
	ep, bucket := s[:i], s[i+1:]
	m := map[string]string{volume.KeyBucket: "any-bucket"}
	if bucket != "*" {
		m[volume.KeyBucket] = bucket
	}
	if ep != "aws" {
		m[volume.KeyEndpoint] = ep
	}
	vc, err := volume.ParseContext(m)
	if err != nil {
		return InlineRule{}, fmt.Errorf("inline volume rule %q: %v (%s)", s, err, want)
	}
	return InlineRule{endpoint: vc.Endpoint, insecure: vc.Insecure, bucket: bucket}, nil
}

func (r InlineRule) String() string {
	ep := r.endpoint
	switch {
	case ep == "":
		ep = "aws"
	case r.insecure:
		ep = "http://" + ep
	}
	return ep + "/" + r.bucket
}

func (r InlineRule) allows(vc volume.Context) bool {
	return vc.Endpoint == r.endpoint && vc.Insecure == r.insecure && (r.bucket == "*" || r.bucket == vc.Bucket)
}

// checkInline decides whether an inline ephemeral volume may be served:
// only when the operator allowed its endpoint and bucket (Config.InlineAllow;
// none by default, so inline volumes are off), and only with a
// node-publish Secret. There is no fallback to the mounter's own identity:
// a pod author, who may write any bucket and endpoint into volumeAttributes,
// must not read with the node's credentials (instance role, IRSA) nor make
// the node connect to any host of the cluster's network.
func (s *Server) checkInline(req *csi.NodePublishVolumeRequest) (volume.Context, error) {
	if len(s.cfg.InlineAllow) == 0 {
		return volume.Context{}, status.Error(codes.FailedPrecondition,
			"inline ephemeral volumes are off on this node: the operator enables them for given endpoints and buckets "+
				"(hoard csi --inline-volume-allow ENDPOINT/BUCKET); use a PersistentVolume otherwise")
	}
	vc, err := parseContext(req.GetVolumeContext())
	if err != nil {
		return volume.Context{}, err
	}
	if len(req.GetSecrets()) == 0 {
		return volume.Context{}, status.Errorf(codes.InvalidArgument,
			"secrets: an inline volume needs a Secret (nodePublishSecretRef) with %s and %s: it is never read with the node's own credentials",
			volume.SecretAccessKeyID, volume.SecretSecretAccessKey)
	}
	if _, err := credentials(req.GetSecrets()); err != nil {
		return volume.Context{}, err
	}
	for _, r := range s.cfg.InlineAllow {
		if r.allows(vc) {
			return vc, nil
		}
	}
	rule := InlineRule{endpoint: vc.Endpoint, insecure: vc.Insecure, bucket: vc.Bucket}
	return volume.Context{}, status.Errorf(codes.PermissionDenied,
		"volume_context: inline volumes of %s are not allowed on this node (allowed: %v)", rule, s.cfg.InlineAllow)
}

// publishEphemeral stages an inline ephemeral volume into a private
// directory under the state directory, with the node-publish secrets; its
// last NodeUnpublishVolume unstages it. The caller holds the volume's lock
// and has checked the request (checkInline).
func (s *Server) publishEphemeral(ctx context.Context, req *csi.NodePublishVolumeRequest) (*volumeState, error) {
	id := req.GetVolumeId()
	want := &volumeState{
		VolumeID: id, StagingPath: s.state.ephemeralDir(id), Ephemeral: true,
		Context: maps.Clone(req.GetVolumeContext()), Secrets: maps.Clone(req.GetSecrets()),
		AccessMode: describeMode(req.GetVolumeCapability()),
	}
	if err := s.stage(ctx, want); err != nil {
		return nil, err
	}
	return s.state.get(id), nil
}
