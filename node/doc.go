// Package node is hoard's CSI Node service: it mounts volumes on a node and
// hands them to the node's mounter (package node/mounter) to serve, so that
// FUSE servers never live in the CSI plugin's process.
//
// What flows in: the CSI node calls (stage, publish, unpublish, unstage,
// stats, health, info, capabilities) from the kubelet, with each volume's
// context (volume.Context, made by the controller) and node-stage
// secrets. What flows out: a read-only FUSE mount per staged volume on its
// staging path, read-only bind mounts of it on the pods' target paths, a
// record per volume in the state directory, and serve/drop requests to the
// mounter. What it never does: serve FUSE (it holds a /dev/fuse descriptor
// only between mount(2) and handing it over; see package fusefd), stat or
// open a path to learn what is mounted there (it reads
// /proc/self/mountinfo, and asks the file system only with a bounded
// statfs), unmount a mount that is not hoard's, or log a secret.
//
// What it refuses: a staging or target path outside the kubelet's directory
// (--kubelet-dir), and an inline ephemeral volume unless the operator
// allowed its endpoint and bucket (--inline-volume-allow; none by default)
// and it brings a node-publish Secret: a pod author writes an inline
// volume's attributes, so it is never read with the node's own identity.
//
// Every mount, unmount, bind, check and statfs goes through Mounts (and
// every mounter call through MounterClient): SystemMounts is the node's real
// mount table; node/nodetest has a fake, on which the service's logic and
// csi-sanity run in any `go test` without root (internal/sanity).
//
// # Two processes
//
//	hoard csi --mode node   the CSI plugin: root, privileged, /var/lib/kubelet with
//	                        Bidirectional propagation. Mounts, binds, unmounts; keeps
//	                        the state directory; runs the restore loop. Upgraded often.
//	hoard mounter           the mounter: one per node, a DaemonSet of its own, upgraded
//	                        rarely. Serves every staged volume, sharing one cache
//	                        backend per (endpoint, bucket, credentials, cache cluster).
//	                        Needs its socket directory and cache, no mount privilege.
//
// They share the mounter's socket (default /run/hoard/mounter.sock, mode
// 0600). Staging a volume: the plugin opens /dev/fuse and mounts it on the
// staging path (fuse.hoard, read-only, allow_other, default_permissions,
// max_read 1 MiB), sends the descriptor and the volume's description to the
// mounter, closes its own copy, and waits until the mounter answers that it
// serves it (after listing the bucket once: a missing bucket is NOT_FOUND,
// refused credentials PERMISSION_DENIED).
//
// # The state directory
//
// One JSON file per staged volume (<dir>/<sha256 of the volume ID>.json,
// mode 0600, directory 0700): staging path, volume context, node-stage
// secrets, the staging mount's device, the published targets. The secrets
// are there because restoring a volume after a mounter crash needs them and
// no CSI call brings them again. Keep the directory on tmpfs (default
// /run/hoard/node; a hostPath of /run/hoard): the secrets then never reach a
// disk, and the records live exactly as long as the mounts they describe (a
// reboot clears both, and the kubelet stages again). Inline ephemeral
// volumes are staged under <dir>/ephemeral/, so in Kubernetes the state
// directory must be a hostPath mounted with Bidirectional propagation like
// /var/lib/kubelet: the mounts made there must outlive the plugin's
// container.
//
// # Restarts: what pods see
//
// The node plugin restarts (upgrade, OOM, crash, kill -9): nothing. The
// mounts are served by the mounter and the plugin holds no FUSE descriptor,
// so no mount notices. The restarted plugin reads its state directory and
// /proc/self/mountinfo, finds its volumes healthy and leaves them alone: the
// staging and target mounts are the same mounts (same mount IDs) before and
// after. CSI calls that were in flight fail and the kubelet repeats them;
// every call is idempotent. Measured here: plugin killed and serving again
// in about one second, reads through the target path uninterrupted.
//
// The mounter restarts or crashes: the kernel aborts every FUSE connection
// it served. Every reader of those volumes, on the host and in every
// container, gets ENOTCONN ("Transport endpoint is not connected");
// NodeGetVolumeStats reports an abnormal volume condition and
// NodeGetVolumeHealth INACCESSIBLE (reason FUSEServerGone). The plugin's
// restore loop (every --restore-interval, default 5 s) waits until a
// mounter answers again, then for each broken volume: unmounts the dead
// staging mount (lazily), mounts a new one, hands it to the new mounter, and
// binds the live staging mount on top of each recorded target. Measured
// here with a 1 s interval: volumes readable again about one second after
// the new mounter started, 6–7 ms per volume. After that:
//
//   - Paths on the host (the staging path, /var/lib/kubelet/pods/.../mount):
//     restored, byte-exact.
//   - A running container whose volumeMount has mountPropagation None (the
//     default): still ENOTCONN. The runtime gave it its own bind of the
//     target when it started, in its own mount namespace, and a private
//     bind receives nothing from the host: it keeps the dead mount until the
//     container restarts (a new container gets a new bind of the target,
//     which shows the live mount). A liveness probe that reads the volume
//     makes that restart automatic.
//   - A running container whose volumeMount has mountPropagation
//     HostToContainer: restored, without a restart, at the same path. Its
//     bind is a slave of the target's mount, and the plugin binds the
//     restored volume over the dead target mount instead of unmounting it
//     first, so the new mount propagates into the container. Files it held
//     open across the crash stay broken (reopen them). This needs the
//     target's mount to be shared, which it is under /var/lib/kubelet (the
//     kubelet makes that directory rshared), and costs the pod nothing:
//     HostToContainer needs no privilege.
//
// Verified on the host (kernel 6.x) with a shared directory standing in
// for /var/lib/kubelet and two mount namespaces standing in for containers,
// one rslave and one rprivate bind of a target (test
// TestRestoreReachesHostToContainerContainers in tests/csi): after a kill -9
// of the mounter, the rslave one reads the volume again after the restore
// and again after a second crash; the rprivate one gets ENOTCONN. Restoring
// the other way, lazily unmounting the dead target and binding the staging
// path again, restores the host path but no container at all, not even a
// HostToContainer one: the new bind then hangs off the target's parent
// directory, and the container's bind is a slave of the old target mount,
// not of the parent. Peers do the same for the same reason (JuiceFS keeps
// the lowest target mount for its mount point recovery). Restores keep a
// target at two layers at most: the CO's original bind at the bottom and
// the live one on top (dead layers from earlier restores are removed first;
// their removal propagates too).
//
// A node drain, or a pod deleted while its volume is broken: unpublish and
// unstage succeed (broken mounts are unmounted lazily), and repeating them
// succeeds too.
//
// # Volume condition
//
// CSI 1.13 (this module's spec) removed VOLUME_CONDITION and the
// volume_condition field of NodeGetVolumeStats in favour of the alpha
// NodeGetVolumeHealth. The node advertises GET_VOLUME_HEALTH and answers
// NodeGetVolumeHealth, and for COs built on an older spec (the kubelet's
// CSIVolumeHealth feature reads the stats field) it also advertises the
// legacy capability value and sets the legacy field on the wire
// (LegacyCondition decodes it).
//
// # Concurrency
//
// Calls for one volume are serialised (a call waits for the one before it
// until its deadline, then fails with ABORTED); the restore loop skips a
// volume a call is working on. Calls for different volumes run in parallel.
package node
