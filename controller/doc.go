// Package controller is hoard's CSI Controller service: it provisions volumes
// backed by S3 buckets and deprovisions them, without a database.
//
// What flows in: CreateVolume with a StorageClass's parameters and the
// provisioner's Secret; DeleteVolume with a volume ID and the same Secret.
// What flows out: a volume ID that says all DeleteVolume needs, and a volume
// context (volume.Context) that says all a node needs apart from
// credentials. What it never does: write to a bucket (CreateVolume only
// lists), delete anything outside a volume's own prefix, keep state between
// calls, or put a credential into a volume ID, a volume context, an error or
// a log line.
//
// # StorageClass parameters
//
//	parameter     values                                  default   notes
//	bucket        S3 bucket name                          required  must exist; CreateVolume lists it once
//	prefix        key prefix, e.g. datasets/team-a        ""        no leading "/", no empty, "." or ".." segment, <= 512 bytes
//	endpoint      host[:port] or http(s)://host[:port]     AWS S3    an http:// scheme implies insecure=true
//	region        e.g. us-east-1                          asked     asked from the store when empty
//	pathStyle     "true" | "false"                        false     path-style requests (most non-AWS stores)
//	insecure      "true" | "false"                        false     plain http; must agree with an endpoint's scheme
//	provisioning  "prefix" | "bucket"                     prefix    see below
//	deletePolicy  "retain" | "delete"                     retain    "delete" only with provisioning=prefix
//	uid, gid      decimal 0..4294967294                   node's    owner of every file and directory
//	fileMode      octal 0001..0777, e.g. 0444              node's    permission bits of files
//	dirMode       octal 0001..0777, e.g. 0555              node's    permission bits of directories
//	metadataTTL   Go duration >= 0, e.g. 10m               node's    listing/stat cache; "0s" caches nothing
//	cacheCluster  cache cluster name, e.g. default         node's    resolved by the node in its etcd (/hoard/<name>/)
//
// Keys the external-provisioner adds with --extra-create-metadata are used:
// csi.storage.k8s.io/pvc/name and csi.storage.k8s.io/pvc/namespace name the
// volume's prefix (both or neither; checked as Kubernetes names);
// csi.storage.k8s.io/pv/name is checked and otherwise unused. Other keys
// under csi.storage.k8s.io/ are Kubernetes' own and ignored. Any other
// unknown key, and any malformed value, is INVALID_ARGUMENT with a message
// that names the parameter and says what it wants.
//
// provisioning=prefix gives each volume a new prefix under the
// StorageClass's: <prefix>/<pvc namespace>/<pvc name>-<hash> with the PVC
// metadata (the PVC name cut to 40 bytes; the hash is 8 hex digits of
// SHA-256 of the volume name, so a re-created claim of the same name gets a
// fresh prefix), else <prefix>/<volume name> (a name longer than 40 bytes, or
// not a safe key segment, is cut or sanitised and gets the hash too). provisioning=bucket shows the
// StorageClass's bucket and prefix themselves to every volume of the class:
// shared, pre-existing data, never deleted by hoard.
//
// # Credentials
//
// Only from the CreateVolume/DeleteVolume secrets, that is the StorageClass's
// csi.storage.k8s.io/provisioner-secret-name and -namespace (the node gets
// its own through node-stage-secret-name/-namespace), or, when there are no
// secrets, the ambient chain of the controller's pod (AWS_*/MINIO_*
// environment, ~/.aws/credentials, IRSA web identity, EKS pod identity, ECS
// or EC2 instance role). The Secret:
//
//	apiVersion: v1
//	kind: Secret
//	metadata: {name: hoard-s3, namespace: hoard}
//	stringData:
//	  accessKeyID: AKIA...          # required if the Secret is used
//	  secretAccessKey: ...          # required if the Secret is used
//	  sessionToken: ...             # optional: temporary credentials
//
// Other keys in the Secret are ignored. A Secret with keys but without
// accessKeyID or secretAccessKey is INVALID_ARGUMENT (the message lists the
// key names it has, never a value). The controller needs s3:ListBucket on
// the bucket, and s3:DeleteObject for deletePolicy=delete.
//
// # Volume IDs
//
// A volume ID encodes what DeleteVolume needs, so the controller needs no
// database and any replica can serve any call. CSI limits a volume ID to 128
// bytes (the general limit for strings, which volume_id does not override;
// Kubernetes sets no lower one), too little for every option, so the options
// travel in the volume context and the ID holds only what deletion needs.
// The codec is package volume's (volume.ParseID):
//
//	h2/pd[s][i]/<mac>/<endpoint>/<region>/<bucket>/<volume prefix>    deletePolicy=delete
//	h1/pr/<digest>                                                      provisioning=prefix, retain
//	h1/br/<digest>                                                      provisioning=bucket
//
// "h2" and "h1" are the format versions; "pd" means prefix provisioning with
// its data deleted, followed by "s" for path-style requests and "i" for plain
// http; endpoint is host[:port] ("" for AWS), region may be empty, and the
// volume prefix (without its final "/") comes last and may contain "/". mac
// is 96 bits of HMAC-SHA256 of the rest (16 base64url characters) under the
// controller's volume ID key (--volume-id-key-file, from a Secret): anyone
// who can write a PersistentVolume could otherwise hand DeleteVolume an ID
// naming another team's prefix. DeleteVolume deletes objects only for an ID
// whose MAC one of its keys made; any other ID deletes nothing. The key file
// holds one key per line (at least 32 bytes each): the first signs, all
// verify, so a key is rotated by putting the new one first and keeping the
// old one until its volumes are gone. Without a key the controller refuses
// deletePolicy=delete (FAILED_PRECONDITION) and DeleteVolume of such an ID
// fails the same way, deleting nothing. IDs of the older h1/pd form had an
// unkeyed check anyone could compute: DeleteVolume keeps their objects and
// logs that they must be deleted by hand.
//
// An ID whose deletion deletes nothing needs no content, only uniqueness:
// digest is 32 hex digits (128 bits) of SHA-256 of the volume name,
// provisioning, delete policy and the whole volume context; that form is 38
// bytes.
//
// A deletePolicy=delete volume whose ID would exceed 128 bytes with the
// readable prefix (a long namespace or PVC name) gets a compact one instead,
// <StorageClass prefix>/<16 hex digits of SHA-256 of the volume name>; the
// PV's volumeAttributes still say where its data is. If even that does not
// fit (a long StorageClass prefix, endpoint or bucket), CreateVolume fails
// with INVALID_ARGUMENT that says so, rather than make an ID the CO may
// truncate or refuse. With endpoint, region and bucket of 40 bytes together,
// StorageClass prefixes up to about 40 bytes always fit.
//
// # Idempotency and AlreadyExists
//
// The same name and parameters give the same ID and volume context on every
// call. The controller keeps no record of names, so it cannot tell that a
// name was used before with other parameters, and never answers
// ALREADY_EXISTS: such a request yields another volume (a different ID), and
// with provisioning=prefix possibly the same prefix. Kubernetes never reuses
// a volume name (pvc-<claim UID>); a CO that does would need a record of
// names, which for prefix volumes could be a marker object in the volume's
// prefix, once ufs can write. For the same reason capacity_bytes is 0
// ("unknown" in CSI): echoing the requested size would make the answer
// depend on the request rather than the volume; the external-provisioner
// puts the claim's size in the PV when the driver reports 0.
//
// # Access modes
//
// Volumes are read-only: the FUSE view does not write. CreateVolume accepts
// mount capabilities with SINGLE_NODE_READER_ONLY or MULTI_NODE_READER_ONLY
// (Kubernetes ReadOnlyMany); every writer mode is INVALID_ARGUMENT "read-only
// volumes: the FUSE view does not support writes yet", so a claim that wants
// to write stays Pending with that message instead of failing at its first
// write. Config.AcceptSingleNodeWriter adds SINGLE_NODE_WRITER (ReadWriteOnce)
// for workloads that insist on such claims for data they only read, and for
// csi-sanity, which creates every volume with it; such volumes are still
// mounted read-only. Block access is INVALID_ARGUMENT.
//
// # Codes
//
//	INVALID_ARGUMENT     missing or malformed field, parameter or secret; unsupported
//	                     capability, content source or mutable parameters
//	NOT_FOUND            the bucket does not exist (CreateVolume); ValidateVolumeCapabilities
//	                     of an ID that is not hoard's
//	FAILED_PRECONDITION  the CA bundle is unusable;
//	                     deletePolicy=delete (or the deletion of such a volume) without a
//	                     volume ID key
//	UNAUTHENTICATED      the store rejects the credentials (unknown key, bad signature, expired token)
//	PERMISSION_DENIED    the store denies the identity the listing or the deletion
//	UNAVAILABLE          the store cannot be reached or fails (5xx)
//	DEADLINE_EXCEEDED    the call ran out of time; DeleteVolume resumes on retry
//	UNIMPLEMENTED        every RPC other than CreateVolume, DeleteVolume,
//	                     ValidateVolumeCapabilities and ControllerGetCapabilities
//
// DeleteVolume of an unknown ID, of a deleted volume or in a bucket that no
// longer exists succeeds, as the spec requires for a volume that does not
// exist.
package controller
