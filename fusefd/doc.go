// Package fusefd is the privileged half of a hoard FUSE mount: it opens
// /dev/fuse, mounts it on a directory, and moves the open /dev/fuse descriptor
// to the process that will serve it.
//
// Why: a FUSE mount lives exactly as long as some process holds its /dev/fuse
// descriptor. Peers serve FUSE from the CSI node plugin itself, so every plugin
// restart (upgrade, OOM, crash) leaves "Transport endpoint is not connected" in
// every pod. In hoard the CSI node plugin (root, privileged, restarted often)
// only mounts; the per-node mounter (rarely restarted, needs no privilege)
// serves. The flow of one volume:
//
//	plugin:  f, _ := Mount(stagingDir, Options{FsName: "hoard:s3://bucket/prefix"})
//	         Send(conn, f, volumeJSON); f.Close()        // over a Unix socket, SCM_RIGHTS
//	mounter: f, meta, _ := Receive(conn)
//	         p, _ := ServePath(f)                        // "/dev/fd/N", owned by go-fuse from now on
//	         srv, _ := fs.Mount(p, root, &fs.Options{})  // go-fuse: no mount(2), answers FUSE_INIT
//	plugin:  Check(stagingDir)                           // Healthy, Broken (ENOTCONN) or NotMounted
//	         Unmount(stagingDir, lazy)                   // idempotent; srv.Wait() then returns in the mounter
//
// Paths are resolved once way for everyone (Resolve: mountinfo first, then
// symbolic links, never a stat(2) through a mount point), and mountinfo is
// parsed once way (Mounts, ParseMountinfo): node, fuseview and node/nodetest
// use both rather than their own.
//
// What flows in: a target directory and mount options (source name, read-only,
// allow_other, owner). What flows out: an *os.File for /dev/fuse, a small
// metadata payload next to it on the socket, and the health of a mount point.
//
// What it never does: serve a file system (no FUSE protocol here; go-fuse does
// that in the mounter), know about buckets, credentials or CSI, or resume a
// session that a dead server had initialised (go-fuse insists on reading
// FUSE_INIT first, so a successor cannot take over a live session; a broken
// mount is unmounted and staged again).
//
// Descriptor ownership, which decides whether a crash hangs or fails fast:
//   - The kernel aborts a FUSE connection (every access then fails with
//     ENOTCONN) only when the last copy of its /dev/fuse descriptor is closed.
//     The plugin must Close its copy once Send returns; a copy kept in the
//     plugin turns a mounter crash into hangs instead of clean ENOTCONN.
//   - Until a server answers FUSE_INIT, every access to the mount point blocks.
//     Mount, then hand over promptly; if the hand-over fails, Close the file
//     (the mount becomes Broken) and Unmount.
//   - ServePath consumes its file: go-fuse adopts the descriptor and closes it
//     when its Serve loop ends.
//
// go-fuse with a /dev/fd/N mount point does not know the real mount point:
// fuse.Server.Unmount refuses it, and WaitMount skips go-fuse's "poll hack".
// Unmount from the privileged side with this package. Without the poll hack, a
// server that opens files of its own mount with package os can deadlock: the
// runtime registers them with epoll, the kernel asks the server (FUSE_POLL)
// while the calling thread holds its P, and with GOMAXPROCS=1 nobody is left to
// answer. Seen here with GOMAXPROCS=1: the process then cannot even be
// killed (a thread waits uninterruptibly for the answer) until the connection
// is aborted through /sys/fs/fuse/connections/N/abort. The mounter must not
// read its own mounts (tests in its process use plain syscalls).
//
// Mount and Unmount need CAP_SYS_ADMIN (the node plugin runs as root) and act
// in the caller's mount namespace; Check reads /proc/self/mountinfo, so it sees
// the mounts of the caller's namespace, and it needs the caller to be let into
// the mount (its owner, or any user with allow_other): the kernel answers
// other callers without asking the server.
package fusefd
