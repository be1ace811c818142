package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set with -ldflags "-X hoard.dev/hoard/internal/buildinfo.Version=..."
// (make build: `git describe --tags`, so a release is its tag, e.g. v0.2.0,
// and a build between tags v0.2.0-14-gabc1234). Without it, a binary made by
// `go install hoard.dev/hoard/cmd/hoard@v0.2.0` takes the module's version,
// and any other build "dev".
var Version = "dev"

func init() {
	if Version != "dev" {
		return
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		Version = bi.Main.Version
	}
}

// Info describes the running binary.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"` // VCS commit, from the Go toolchain's stamp
	Time      string `json:"time,omitempty"`     // commit time
	Modified  bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns what the binary knows of its build.
func Get() Info {
	in := Info{Version: Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				in.Time = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	return in
}

// String is one line: version, revision, Go version and platform.
func (in Info) String() string {
	s := "hoard " + in.Version
	if in.Revision != "" {
		rev := in.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if in.Modified {
			rev += "+modified"
		}
		s += fmt.Sprintf(" (%s %s)", rev, in.Time)
	}
	return s + ", " + in.GoVersion + " " + in.Platform
}
