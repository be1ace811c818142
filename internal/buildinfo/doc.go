// Package buildinfo holds the version stamped into the binary at build time
// (from the Git tag, see Version) and what the Go toolchain recorded of the
// build (revision, Go version). It never reads anything but the binary's own
// build information.
package buildinfo
