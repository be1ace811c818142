// Package sanity holds no code: its test runs the CSI conformance suite
// (csi-test's pkg/sanity, the library behind csi-sanity) in-process against
// hoard's controller and node services on every `go test` and `make unit`,
// without root, MinIO or FUSE: buckets are local directories (ufs.Local) and
// the node works on node/nodetest's fake mount table and mounter. The same
// suite runs against the real binary, real mounts and MinIO as root in
// tests/csi (TestSanity).
package sanity
