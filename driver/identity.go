package driver

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"hoard.dev/hoard/internal/buildinfo"
)

// ErrNotReady, wrapped by a health check's error, means "still starting,
// otherwise healthy": Probe answers ready=false instead of failing.
var ErrNotReady = errors.New("not ready yet")

// probeTimeout bounds a health check when the CO's call has no deadline.
const probeTimeout = 10 * time.Second

// Identity serves the CSI Identity service. The zero value is usable: driver
// DriverName, version buildinfo.Version, always healthy.
type Identity struct {
	csi.UnimplementedIdentityServer

	// Name and Version override DriverName and buildinfo.Version (tests).
	Name, Version string
	// Health, if set, is called by every Probe: nil means ready; an error
	// wrapping ErrNotReady means starting (ready=false); any other error
	// means unhealthy. It should be cheap: liveness probes call it every few
	// seconds. Examples: the node's cache client cannot reach the cache,
	// the mounter process is gone.
	Health func(context.Context) error
	// Logger receives why Probe answered not ready; nil means slog.Default().
	Logger *slog.Logger
}

var _ csi.IdentityServer = (*Identity)(nil)

// GetPluginInfo returns the driver name and version. It never fails.
func (id *Identity) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	name, version := id.Name, id.Version
	if name == "" {
		name = DriverName
	}
	if version == "" {
		version = buildinfo.Version
	}
	return &csi.GetPluginInfoResponse{Name: name, VendorVersion: version}, nil
}

// GetPluginCapabilities returns CONTROLLER_SERVICE, and no volume expansion:
// a volume is a bucket prefix, with nothing to expand. The answer is the same
// in every mode (controller, node, both), as the spec requires: it describes
// the plugin as deployed, not this process.
func (id *Identity) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{
		Capabilities: []*csi.PluginCapability{{
			Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{
				Type: csi.PluginCapability_Service_CONTROLLER_SERVICE,
			}},
		}},
	}, nil
}

// Probe runs the health check. Healthy: ready=true. Starting (the check's
// error wraps ErrNotReady): ready=false, and the reason is logged, as the
// response has no field for it. Unhealthy: FAILED_PRECONDITION with the
// reason, which the spec prescribes for "plugin not healthy" and after which
// a CO may restart the plugin.
func (id *Identity) Probe(ctx context.Context, _ *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	if id.Health == nil {
		return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, probeTimeout)
		defer cancel()
	}
	err := id.Health(ctx)
	switch {
	case err == nil:
		return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
	case errors.Is(err, ErrNotReady):
		log := id.Logger
		if log == nil {
			log = slog.Default()
		}
		log.InfoContext(ctx, "probe: not ready", "reason", err.Error())
		return &csi.ProbeResponse{Ready: wrapperspb.Bool(false)}, nil
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "not healthy: %v", err)
	}
}
