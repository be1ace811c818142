// Package ufs is hoard's access to the "under file system": the bucket that
// cached data comes from.
//
// It owns exactly three operations on a bucket: Stat (size and version of one
// object), List (one page of keys and common prefixes under a prefix) and
// ReadRange (a byte range of one version of one object). Each is a small
// capability interface (Stater, Lister, RangeReader); a backend implements the
// ones it can and says so at compile time. UFS is the set every backend has
// today. Backends:
//
//   - S3 (s3://bucket): Amazon S3 and S3-compatible stores (MinIO, Ceph RGW, ...)
//     through minio-go, one request per call.
//   - Local (file:///dir): a local directory, for laptops and tests.
//
// Every object is named by (Source, key, version). Version is the S3 ETag (or a
// local file's size, mtime and inode); ReadRange serves only the version it was
// asked for and fails with ErrVersionMismatch if the object has changed since,
// so a cache that keys its pages by version can never store new bytes under an
// old name.
//
// Errors wrap one of the sentinels (ErrNotFound, ErrNoSuchBucket,
// ErrAccessDenied, ErrVersionMismatch, ErrInvalidKey) and say what was being
// done, e.g. "stat s3://127.0.0.1:9000/data/a.bin: not found: ...".
//
// What this package never does:
//   - cache anything: no data, no metadata, no negative entries; every call goes
//     to the bucket (caching is the business of the client and the workers);
//   - log, print or put into an error message a secret key or session token
//     (S3Config redacts itself in String, GoString and LogValue, and Source
//     names only endpoint and bucket);
//   - know about CSI, FUSE, mounts, chunks or pages.
package ufs
