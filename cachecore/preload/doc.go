// Package preload warms the cache with every object under a prefix, before a
// job needs them: it lists the prefix, then has the cache fetch each object
// (the chunk owners fetch from the bucket; no bytes travel to the caller).
//
// It reports progress as it goes and never reads object bytes itself.
package preload
