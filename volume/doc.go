// Package volume is the CSI contract between hoard's controller and its
// node plugin: what one side writes and the other reads. It is a leaf: the
// controller and the node import it, never each other, and it imports
// neither (a test in internal/boundary checks that).
//
// What it owns:
//   - the volume context (Context, ParseContext): what a node needs to serve
//     a volume, apart from credentials;
//   - the credentials Secret: its keys and their parsing (ParseSecrets),
//     for the controller's provisioner secrets and the node's node-stage and
//     node-publish secrets alike;
//   - the mapping from a bucket probe's errors (package ufs's sentinels) to
//     gRPC codes (BucketStatus), so both sides answer a missing bucket or a
//     refused credential with the same code.
//
// What it never does: I/O of any kind, logging, or putting a secret's value
// into an error message.
//
// # Volume context
//
// CreateVolume returns a volume_context that the CO stores with the volume
// (in Kubernetes: the PV's spec.csi.volumeAttributes) and hands to every node
// call. Context is its Go form and ParseContext its one parser.
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
// NodeStageVolume secrets (see ParseSecrets for the Secret layout).
// Keys under csi.storage.k8s.io/ and storage.kubernetes.io/, which Kubernetes
// adds on its own, are ignored; any other key is an error, so that a node
// older than its controller fails loudly instead of ignoring an option.
package volume
