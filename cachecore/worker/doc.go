// Package worker serves pages of cached objects to clients.
//
// A request names one version of one object and a byte range. The worker
// answers from its page store; on a miss it fetches the missing pages from the
// bucket in ranged GETs of FetchBytes, several in parallel, and exactly once
// however many clients ask at the same moment (package flight). Each page is
// stored and streamed to every waiting client as soon as it is complete, so the
// first bytes leave before the whole range is cached. A request may ask for
// blocks (Request.Blocks, BlockBytes) instead: a random read's parts of
// pages, fetched and cached as such (see blocks.go).
//
// The worker is reached over HTTP (Handler: GET /v1/read, plain range reads,
// measured faster than gRPC for bulk bytes; see docs/benchmarks.md) or, in the
// same process, by calling Read directly.
//
// A request may carry the tenant's credentials (headers inside the mutual
// TLS the server package sets up): the worker then serves the object,
// cached pages included, only after the store confirmed with those
// credentials that they may read that version (authorize, one HEAD per
// credential and object per AuthTTL, or for a cold read its own GET with
// them), and fetches misses with them.
// Without credentials it reads only sources its Sources let it read with
// its own identity. Sizes come from the store, never from the request.
//
// It never decides routing, never knows who else is a worker, and knows nothing
// of CSI, FUSE or mounts.
package worker
