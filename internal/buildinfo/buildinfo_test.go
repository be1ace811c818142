package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestInfo(t *testing.T) {
	in := Get()
	if in.Version != Version || in.GoVersion != runtime.Version() || in.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("Get() = %+v", in)
	}
	in = Info{Version: "v0.2.0-3-gabc", Revision: "0123456789abcdef0123", Time: "2026-12-03T08:00:00Z", Modified: true,
		GoVersion: "go1.26.8", Platform: "linux/amd64"}
	if got, want := in.String(), "hoard v0.2.0-3-gabc (0123456789ab+modified 2026-12-03T08:00:00Z), go1.26.8 linux/amd64"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if s := (Info{Version: "dev", GoVersion: "go1.26.8", Platform: "linux/amd64"}).String(); strings.Contains(s, "(") {
		t.Errorf("no revision, yet %q", s)
	}
}
