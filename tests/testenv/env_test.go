package testenv

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// recordingTB records Fatalf and Skipf instead of ending the test.
type recordingTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordingTB) Helper()                        {}
func (r *recordingTB) Fatalf(format string, a ...any) { r.fatal = fmt.Sprintf(format, a...) }
func (r *recordingTB) Skipf(format string, a ...any)  { r.skip = fmt.Sprintf(format, a...) }

func TestRequireOrSkip(t *testing.T) {
	missing := errors.New("not installed")
	for _, tc := range []struct {
		name, env string
		err       error
		wantFatal bool
		wantSkip  bool
	}{
		{name: "present", env: "1", err: nil},
		{name: "missing, local run", env: "", err: missing, wantSkip: true},
		{name: "missing, HOARD_REQUIRE_ALL=0", env: "0", err: missing, wantSkip: true},
		{name: "missing, CI", env: "1", err: missing, wantFatal: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequireAllEnv, tc.env)
			r := &recordingTB{TB: t}
			RequireOrSkip(r, "frobnicator", tc.err)
			if (r.fatal != "") != tc.wantFatal || (r.skip != "") != tc.wantSkip {
				t.Fatalf("fatal=%q skip=%q, want fatal %v skip %v", r.fatal, r.skip, tc.wantFatal, tc.wantSkip)
			}
			for _, msg := range []string{r.fatal, r.skip} {
				if msg != "" && !(strings.Contains(msg, "frobnicator") && strings.Contains(msg, "not installed")) {
					t.Errorf("message %q should name the prerequisite and the reason", msg)
				}
			}
		})
	}
}

func TestCacheDir(t *testing.T) {
	t.Setenv("HOARD_CACHE", "")
	os.Unsetenv("HOARD_CACHE")
	if got := CacheDir(); got != "/var/cache/hoard" {
		t.Errorf("CacheDir() = %q without HOARD_CACHE, want /var/cache/hoard", got)
	}
	t.Setenv("HOARD_CACHE", "/tmp/elsewhere")
	if got := CacheDir(); got != "/tmp/elsewhere" {
		t.Errorf("CacheDir() = %q, want $HOARD_CACHE", got)
	}
}
