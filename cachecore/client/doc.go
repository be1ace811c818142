// Package client reads objects through the cache cluster.
//
// Given an object version and a byte range, the client splits the range into
// pages and, for each page, looks in order at:
//
//  1. its hot tier: a small, byte-bounded in-memory cache of recent pages
//     (readahead lands here, and pages owned by other nodes stay close);
//  2. a fetch already in flight for that page (package flight), which it joins;
//  3. the chunk's owner worker, chosen by rendezvous hashing over the live
//     members, then the next workers in routing order on any error or timeout;
//  4. the bucket itself.
//
// So a read that the bucket could serve never fails because a worker died, and
// a page is requested once however many readers want it. Failover resumes at
// the first page not yet received. A worker in the same process (the embedded
// default) is called directly, without a socket.
//
// Readers made by NewReader detect sequential access and read ahead, across
// chunk boundaries, into the hot tier; the window doubles while reads stay
// sequential, up to ReadaheadBytes.
//
// The client caches no metadata, holds no credentials of its own (the Sources
// it is given do), and knows nothing of FUSE or CSI.
package client
