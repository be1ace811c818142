// Package objid names cached data: the source (bucket) an object lives in, the
// identity of one version of one object, and the hashes derived from it for
// routing (per chunk).
//
// A Source is the typed, internal name of a bucket: scheme (s3+https, s3+http
// or file), endpoint and bucket. It is not a user's URI (s3://bucket/prefix);
// its text form ("s3+https://host:port/bucket") travels between clients and
// workers and is parsed strictly (ParseSource accepts only what String makes).
//
// An ID is the first 128 bits of SHA-256 over a canonical, length-prefixed
// encoding of (scheme, endpoint, bucket, key, version, size). Nobody can make
// two objects share an ID (that needs a SHA-256 collision on 128 bits, about
// 2^64 work for a birthday attack, and a second preimage of a chosen victim
// needs 2^128), so an ID can name shared cached bytes. Non-cryptographic
// hashes (xxhash, Mix64) are for routing and hash tables only, never identity.
//
// This package does no I/O and holds no state.
package objid
