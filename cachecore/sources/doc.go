// Package sources keeps the buckets a process may read, opened once each,
// by their source name (ufs.UFS.Source()).
//
// Workers are asked for sources by name over the network, so the set is
// explicit: a source is served if it was added, or if it is an S3 source and
// the registry was given S3 defaults (the worker's own endpoint, region and
// credentials) to open it with. A file:// source is never opened on request:
// that would let any client read the worker's disk.
//
// It never logs or returns credentials.
package sources
