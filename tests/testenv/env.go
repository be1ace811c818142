// Package testenv holds the helpers hoard's tests share: real servers started
// on loopback addresses for the length of one test (MinIO here; etcd next to
// it), a counting reverse proxy to see what reaches the bucket, and the rule
// for prerequisites that are missing on a machine.
//
// Every process, listener and directory a helper makes is released with
// t.Cleanup. Helpers listen on 127.0.0.1 only.
package testenv

import (
	"errors"
	"os"
	"testing"
)

// RequireAllEnv is the environment variable that turns a missing prerequisite
// into a test failure. CI sets it to 1.
const RequireAllEnv = "HOARD_REQUIRE_ALL"

// RequireOrSkip does nothing if err is nil. Otherwise what (a prerequisite
// such as "MinIO server binary") is missing: the test fails if
// HOARD_REQUIRE_ALL=1, and is skipped, saying why, if not.
func RequireOrSkip(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv(RequireAllEnv) == "1" {
		t.Fatalf("%s is required (%s=1) but not available: %v", what, RequireAllEnv, err)
	} else {
		t.Skipf("skipping: %s not available: %v (set %s=1 to make this a failure)", what, err, RequireAllEnv)
	}
}

// CacheDir is where binaries and data built for tests are kept outside the
// checkout: $HOARD_CACHE, or /var/cache/hoard.
func CacheDir() string {
	if d := os.Getenv("HOARD_CACHE"); d != "" {
		return d
	}
	return "/var/cache/hoard"
}

// RequireFUSE skips the test (or fails it, with HOARD_REQUIRE_ALL=1) unless
// the process can mount FUSE file systems directly: root and /dev/fuse.
func RequireFUSE(t testing.TB) {
	t.Helper()
	var err error
	if os.Geteuid() != 0 {
		err = errors.New("not running as root")
	} else if f, ferr := os.OpenFile("/dev/fuse", os.O_RDWR, 0); ferr != nil {
		err = ferr
	} else {
		f.Close()
	}
	RequireOrSkip(t, "root and /dev/fuse", err)
}
