// Package registration registers hoard's CSI node plugin with the kubelet, in
// the place of the node-driver-registrar sidecar that this project does not
// ship.
//
// What flows in: a Config naming the driver (csi.hoard.dev), the path of its
// CSI socket as the kubelet sees it and the CSI versions it speaks. What it
// owns: one unix socket, <RegistryDir>/<DriverName>-reg.sock, in the
// directory the kubelet's plugin watcher follows with inotify
// (/var/lib/kubelet/plugins_registry). On it, it serves the kubelet plugin
// registration API (k8s.io/kubelet/pkg/apis/pluginregistration/v1):
//
//   - GetInfo answers type CSIPlugin, the driver name, the CSI endpoint and
//     the supported versions. The kubelet calls it when the socket appears and
//     again periodically, as a health check, for as long as it exists.
//   - NotifyRegistrationStatus receives the kubelet's verdict. What flows out:
//     Status (registered or not, the kubelet's last error message), for the
//     driver's Probe and logs, and Healthy, which checks that the socket is
//     still in place.
//
// What it never does: serve CSI itself (the driver serves CSI on Endpoint;
// this package only tells the kubelet where that is), talk to the API server,
// or touch a socket it did not create.
//
// # Lifecycle
//
// Serve validates the Config, creates RegistryDir if missing, removes a stale
// socket left by a previous run (only if it is a socket; any other file is an
// error), listens with mode 0600 (set before bind, so the socket is never
// briefly wider) and serves until ctx is done. Then it removes the socket —
// only if it is still the one it created — which the kubelet reads as the
// plugin's deregistration, and stops the gRPC server.
//
// The kubelet registers a plugin each time its socket is created, and
// deregisters it when the socket is removed. Registration success and failure
// are logged once each per change of state, not per kubelet retry.
//
// # When the socket disappears while serving
//
// Something may delete the socket under a running plugin: a kubelet
// reinstalled or restarted with a wiped /var/lib/kubelet, an operator
// cleaning the directory. The kubelet then deregisters the driver and, since
// nothing re-creates the socket, never registers it again. The
// node-driver-registrar answers by failing its health check so that its
// container is restarted. hoard does not: its node plugin is the process that
// serves the FUSE mounts of running pods, and restarting it to re-register
// would take them down. Instead a watchdog checks the socket every
// CheckInterval and, when the path is gone, re-creates the directory and the
// socket and serves on it; the kubelet sees a new socket and registers the
// driver again. Status is reset at that point (not registered, no error)
// until the kubelet reports again.
//
// If the path holds a different socket (a second instance of the driver, as
// during a rolling update, took it over), the watchdog leaves it alone and
// Healthy reports the takeover. Healthy checks the path live on every call,
// so a probe sees a missing socket at once, before the watchdog repairs it.
package registration
