// Package driver is the CSI plumbing hoard's controller and node plugins share:
// the gRPC server on the CSI endpoint, the log of every call and the Identity
// service. What the two sides say to each other (volume context, volume IDs,
// secrets) is package volume's.
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
package driver
