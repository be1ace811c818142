// Package driver is the CSI plumbing hoard's controller and node plugins share:
// the gRPC server on the CSI endpoint, the log of every call, the Identity
// service, and the volume context, the contract between the controller that
// provisions a volume and the node that mounts it.
//
// What flows in: an endpoint (unix:///csi/csi.sock, or tcp://127.0.0.1:port
// for tests) and the CSI services one process runs (Services: Identity always,
// Controller and Node as the mode asks). What flows out: a gRPC server that
// serves them until its context is done, then stops gracefully and removes
// its socket.
//
// Every call is logged once, when it ends, with its method, gRPC status code
// and duration (capability and probe calls at debug level, errors at warn or
// error). At debug level the request and the response are logged too, through
// Redact, which replaces every field the CSI spec marks csi_secret (the
// secrets maps of CreateVolume, DeleteVolume, NodeStageVolume, ...) with
// "***stripped***". What this package never does: log a secret, or log a
// request or response by any other means (a JSON log handler would marshal a
// raw request, secrets and all).
//
// # Volume context
//
// CreateVolume returns a volume_context that the CO stores with the volume
// (in Kubernetes: the PV's spec.csi.volumeAttributes) and hands to every node
// call. VolumeContext is its Go form and ParseVolumeContext its one parser.
// Its keys are a subset of the StorageClass parameters, with the same
// spelling and rules, so a hand-written (static) PersistentVolume uses the
// vocabulary a StorageClass does:
//
//	key           value                                        default (when absent)
//	bucket        S3 bucket name (required)                    -
//	prefix        key prefix the volume shows, e.g. a/b        "" (the whole bucket)
//	endpoint      host[:port] or http(s)://host[:port]         "" (Amazon S3)
//	region        S3 region                                    "" (asked from the store)
//	pathStyle     "true" or "false"                            false
//	insecure      "true" or "false": plain http                false
//	uid, gid      owner of every file and directory (decimal)  node default
//	fileMode      permission bits of files (octal, e.g. 0444)  node default
//	dirMode       permission bits of directories (octal)       node default
//	metadataTTL   how long listings and stats are cached (Go   node default
//	              duration, e.g. 10m; "0s" caches nothing)
//	cacheCluster  name of the cache cluster to read through     node default
//
// cacheCluster is a name, not an address: the cache cluster's name in etcd
// (the --cluster of `hoard worker`; its keys live under /hoard/<name>/). The
// node plugin knows how to reach etcd and resolves the name there. Addresses
// stay in the node's own configuration, so a StorageClass author cannot point
// nodes at arbitrary hosts.
//
// The volume context never holds credentials: they reach the node as
// NodeStageVolume secrets (see package controller for the Secret layout).
// Keys under csi.storage.k8s.io/ and storage.kubernetes.io/, which Kubernetes
// adds on its own, are ignored; any other key is an error, so that a node
// older than its controller fails loudly instead of ignoring an option.
package driver
