// Package fuseviewtest holds test helpers for fuseview and its users: an
// in-memory bucket that stores any key, including the odd ones real stores
// refuse (MinIO rejects empty segments, "." and "..", and names over 255
// bytes), and counts the requests made to it.
package fuseviewtest
