// Package objid names cached data: the identity of one version of one object, and
// the hashes derived from it for routing (per chunk) and for the page store (per page).
//
// An ID covers (source, key, version), so an object overwritten in its bucket gets a
// new ID and old cached bytes are never served for it. IDs are 96 bits wide: at ten
// million cached objects the chance that two of them collide is about 10^-15.
//
// This package does no I/O and holds no state.
package objid
