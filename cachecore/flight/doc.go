// Package flight coalesces concurrent fetches of the same pages.
//
// It is singleflight for pages that are fetched in runs: one caller starts a
// fetch of several consecutive pages (one ranged GET), and any caller that
// wants one of those pages meanwhile waits for that page alone, so it gets its
// bytes as soon as they arrive, before the rest of the run. The worker uses it
// in front of the bucket, the client in front of the workers.
//
// A finished call (Finish) leaves the group before its waiters wake: a
// caller that asks for the page after a failed fetch starts a new one, never
// joins the failed call. A delivered call (Deliver) stays until Forget.
//
// It never fetches, stores or retries anything itself.
package flight
