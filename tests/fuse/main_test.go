package fuse_test

import (
	"fmt"
	"os"
	"testing"

	"hoard.dev/hoard/tests/testenv"
)

// TestMain puts every temporary directory, mount points included, below a
// shared mount (testenv.SharedTempRoot): a copy of a test's mount in a
// namespace another test or run created meanwhile goes away with the
// unmount instead of keeping the FUSE server busy until that namespace
// ends.
func TestMain(m *testing.M) {
	undo, err := testenv.SharedTempRoot("hoard-fuse-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	undo()
	os.Exit(code)
}
