// Package buildinfo holds the version stamped into the binary at build time.
package buildinfo
