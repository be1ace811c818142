package testenv

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SharedTempRoot makes a new directory a shared mount point (bound onto
// itself, propagation shared) and points TMPDIR at it, so that every
// t.TempDir of the test binary, and of the processes it starts, lies below
// it. Call it from TestMain, before m.Run; run the returned function after.
//
// Why: a mount namespace created while a test's FUSE mount exists (another
// test's node namespace, `unshare --mount`, `ip netns exec`, from this run
// or another on the machine) gets a copy of the mount. Where the root mount
// is private, as on a machine without systemd, unmounting here leaves that
// copy, the FUSE connection lives on and the server serves it until the
// namespace goes. Below a shared mount the unmount propagates to copies
// made as slaves (what those tools make), and the server stops at once.
//
// Without the privilege to mount it does nothing: the tests that mount
// need root and skip (or fail, with HOARD_REQUIRE_ALL) on their own.
func SharedTempRoot(prefix string) (undo func(), err error) {
	if os.Geteuid() != 0 {
		return func() {}, nil
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("testenv: shared temp root: %w", err)
	}
	// As /tmp: tests that read as another user (nobody) must traverse it.
	if err := os.Chmod(dir, 0o1777); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testenv: shared temp root: %w", err)
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testenv: bind %s onto itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testenv: make %s a shared mount: %w", dir, err)
	}
	old, had := os.LookupEnv("TMPDIR")
	os.Setenv("TMPDIR", dir)
	return func() {
		if had {
			os.Setenv("TMPDIR", old)
		} else {
			os.Unsetenv("TMPDIR")
		}
		// Lazily: with anything a failed test left mounted below it.
		unix.Unmount(dir, unix.MNT_DETACH)
		os.RemoveAll(dir)
	}, nil
}
