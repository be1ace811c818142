// Package mounter is hoard's per-node FUSE server: a long-lived process that
// serves every staged volume of its node, so that the CSI node plugin, which
// is upgraded and restarted far more often, holds no FUSE connection at all.
//
// What flows in: requests on a Unix socket (mode 0600, default
// /run/hoard/mounter.sock), one per connection. A serve request describes a
// staged volume (ID, source bucket and prefix, view options, optional
// credentials, cache cluster) and is followed by the /dev/fuse descriptor of
// the staging mount that the plugin just made (fusefd.Send, SCM_RIGHTS).
// What flows out: a FUSE session serving that descriptor (fuseview on
// fusefd.ServePath's "/dev/fd/N"), and an answer: ok with the session, or an
// error with the gRPC code the plugin's CSI call should return.
//
// # Sharing
//
// Each volume is its own FUSE session, but sessions share cache backends:
// one cache client (hot tier, readahead, in-flight fetches) and one opened
// bucket per (endpoint, region, addressing, bucket, credentials, cache
// cluster), whatever prefix or view options the volumes use. Ten pods of a
// Deployment that mount the same model volume, or ten volumes that are
// prefixes of one bucket, are served by one process and one backend. With
// --etcd every backend reads through the cache cluster; without it the
// mounter runs one embedded cache worker (one page store, one capacity) that
// every backend reads through. In that embedded mode the worker fetches a
// bucket's misses with the credentials of the backend that registered the
// bucket last (cached pages are shared by all volumes of a bucket anyway, as
// in the cluster); backends of other credentials fall back to their own on
// a worker error.
//
// A session ends when its staging mount is unmounted (and the last file open
// on a lazily unmounted mount is closed) or its connection aborted: go-fuse's
// Serve returns, the session is dropped, and a backend that no session uses
// any more is closed.
//
// # Operations
//
//	serve  {op, volumeID, stagingPath, device, source, view, credentials?, cacheCluster?} + fd
//	       -> {ok, session} | {error, code}
//	list   -> {ok, sessions[], backends[]}   (credentials appear only as a fingerprint)
//	ping   -> {ok, version, pid}
//	drop   {op, volumeID} -> {ok, remaining}: waits a little for the volume's sessions to end
//
// Messages are fusefd's frames (one framing for hoard's Unix sockets: a
// 4-byte magic naming protocol and version, a big-endian uint32 length, the
// payload, optionally a descriptor): "hmr1" frames of JSON, and for serve
// the "hfd1" frame with the /dev/fuse descriptor (its payload the volume
// ID) right after the request. JSON names are camelCase, as the node's
// state files and CSI spell them; volumeID and stagingPath are also written
// and read as volume_id and staging_path, their names in hmr1's first
// release, so that a mounter and a plugin of either release understand each
// other (the mounter is upgraded rarely: restarting it breaks every mount).
//
// Why the descriptor is not in the request's own frame (one send, as
// mountpoint-s3's driver does it): a mounter of the first release reads the
// request with a plain read and the descriptor with recvmsg; a single send
// would need a new protocol version that such a mounter refuses, and a
// node plugin, upgraded often, must keep serving volumes through the
// mounter it finds. The two sends are one call on one connection, and the
// mounter checks that the descriptor's payload names the request's volume.
//
// # What it never does
//
// Mount or unmount anything (the plugin does both, as root, in its mount
// namespace; the mounter needs no privilege beyond its socket and cache
// directory), open a file on a mount it serves (see fusefd: with the
// /dev/fd/N form go-fuse skips its poll workaround, and a server that reads
// its own mount can deadlock), or log a credential: Request and Credentials
// redact themselves in String, GoString and LogValue, and nothing logs a
// request's JSON.
//
// # Restarts
//
// When the mounter exits, the kernel aborts every connection it served: each
// staging mount and every bind of it answers ENOTCONN ("Transport endpoint is
// not connected"). The plugin's restore loop sees that, mounts each volume
// again and sends it to the new mounter (see package node for what pods see
// meanwhile). The mounter keeps no state of its own; the plugin's state
// directory is the record of what should be served.
package mounter
