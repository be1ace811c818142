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
// container is restarted. hoard re-creates the socket instead: a watchdog
// checks it every CheckInterval and, when the path is gone, re-creates the
// directory and the socket and serves on it; the kubelet sees a new socket
// and registers the driver again. Status is reset at that point (not
// registered, no error) until the kubelet reports again. Restarting the
// plugin would be safe too (the mounter, not the plugin, holds the FUSE
// sessions, so mounts survive it), but it fails the CSI calls in flight and
// costs a restore-loop pass for nothing.
//
// # Why not the node-driver-registrar sidecar
//
// What self-registration buys: one container less per node (an image less
// to pull, patch and keep in step, some 10-20 MB of memory), and the
// registration's state in the plugin's own Probe and logs. What it costs:
// hoard carries the kubelet's registration protocol itself (this package,
// pinned to k8s.io/kubelet's pluginregistration/v1) instead of taking
// sig-storage's maintained sidecar, so a change of that API is hoard's to
// follow, and the node plugin mounts the kubelet's plugins_registry
// directory. The protocol has been stable since Kubernetes 1.13; if it moves
// or an operator prefers the sidecar, running node-driver-registrar and
// leaving --kubelet-registration-path unset is equivalent.
//
// If the path holds a different socket (a second instance of the driver, as
// during a rolling update, took it over), the watchdog leaves it alone and
// Healthy reports the takeover. Healthy checks the path live on every call,
// so a probe sees a missing socket at once, before the watchdog repairs it.
package registration
