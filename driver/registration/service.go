package registration

import (
	"context"
	"slices"

	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// service implements the Registration gRPC service for a Server. With
// k8s.io/kubelet v0.34+ a registration server must embed
// UnimplementedRegistrationServer, by value (RegisterRegistrationServer checks).
type service struct {
	registerapi.UnimplementedRegistrationServer
	s *Server
}

var _ registerapi.RegistrationServer = (*service)(nil)

// GetInfo tells the kubelet what this plugin is and where its CSI endpoint is.
// The kubelet calls it on discovery and then periodically as a health check,
// so it logs only at debug level. It never fails.
func (v *service) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	v.s.log.Debug("kubelet asked for plugin info")
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              v.s.cfg.DriverName,
		Endpoint:          v.s.cfg.Endpoint,
		SupportedVersions: slices.Clone(v.s.cfg.Versions),
	}, nil
}

// NotifyRegistrationStatus records the kubelet's verdict. On failure the
// kubelet retries registration by itself, with backoff, from GetInfo on; the
// plugin has nothing to do but report it (node-driver-registrar exits to be
// restarted instead, which would take hoard's FUSE mounts down with it).
func (v *service) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	v.s.setStatus(st.GetPluginRegistered(), st.GetError())
	return &registerapi.RegistrationStatusResponse{}, nil
}
