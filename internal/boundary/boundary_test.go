package boundary

import (
	"go/build"
	"io/fs"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "hoard.dev/hoard"

// rules are docs/architecture.md's "never" column for imports: no package
// matching from may import (directly or through other hoard packages) a
// package matching any of never. A pattern ending in "/..." matches the
// package and everything under it.
var rules = []struct {
	from  string
	never []string
	why   string
}{
	{"hoard.dev/hoard/cachecore/...", []string{
		"hoard.dev/hoard/controller/...", "hoard.dev/hoard/node/...", "hoard.dev/hoard/driver/...",
		"hoard.dev/hoard/volume/...", "hoard.dev/hoard/fusefd/...", "hoard.dev/hoard/fuseview/...",
		"github.com/container-storage-interface/spec/...", "github.com/hanwen/go-fuse/v2/...",
	}, "cachecore knows nothing of CSI, FUSE or mounts"},
	{"hoard.dev/hoard/controller/...", []string{"hoard.dev/hoard/node/...", "hoard.dev/hoard/fusefd/...", "hoard.dev/hoard/fuseview/..."},
		"the controller never mounts, and controller and node never import each other"},
	{"hoard.dev/hoard/node/...", []string{"hoard.dev/hoard/controller/..."},
		"controller and node never import each other: what they share is package volume's"},
	{"hoard.dev/hoard/volume/...", []string{
		"hoard.dev/hoard/controller/...", "hoard.dev/hoard/node/...", "hoard.dev/hoard/driver/...",
		"hoard.dev/hoard/fusefd/...", "hoard.dev/hoard/fuseview/...",
	}, "the CSI contract is a leaf both sides import"},
	{"hoard.dev/hoard/driver/...", []string{"hoard.dev/hoard/controller/...", "hoard.dev/hoard/node/..."},
		"driver is plumbing under both services"},
	{"hoard.dev/hoard/fusefd/...", []string{"hoard.dev/hoard/cachecore/...", "github.com/container-storage-interface/spec/..."},
		"fusefd knows nothing of buckets, credentials or CSI"},
	{"hoard.dev/hoard/fuseview/...", []string{"hoard.dev/hoard/controller/...", "hoard.dev/hoard/node/...", "hoard.dev/hoard/driver/...",
		"github.com/container-storage-interface/spec/..."}, "fuseview knows nothing of CSI"},
	{"hoard.dev/hoard/cachecore/flight", []string{"hoard.dev/hoard/cachecore/pagestore"},
		"flight's group is generic over its key"},
	{"hoard.dev/hoard/cachecore/stall", []string{"hoard.dev/hoard/..."},
		"stall is a timer over any reader: it knows no bucket, worker or page"},
	{"hoard.dev/hoard/internal/metrics", []string{"hoard.dev/hoard/cachecore/...", "hoard.dev/hoard/node/...",
		"hoard.dev/hoard/driver/...", "hoard.dev/hoard/fuseview/...", "hoard.dev/hoard/controller/...", "hoard.dev/hoard/volume/..."},
		"the metrics table is a leaf every component imports"},
}

func match(pattern, path string) bool {
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == p || strings.HasPrefix(path, p+"/")
	}
	return path == pattern
}

// graph maps every package of the module (tests excluded) to its imports.
func graph(t *testing.T) map[string][]string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	g := map[string][]string{}
	var visit func(path string)
	visit = func(path string) {
		if _, done := g[path]; done || !strings.HasPrefix(path, module) {
			return
		}
		dir := filepath.Join(root, strings.TrimPrefix(path, module))
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("reading package %s: %v", path, err)
		}
		g[path] = pkg.Imports
		for _, imp := range pkg.Imports {
			visit(imp)
		}
	}
	for _, top := range []string{"cmd/hoard", "cachecore", "controller", "node", "driver", "volume", "fusefd", "fuseview"} {
		filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				if pkg, err := build.ImportDir(p, 0); err == nil && len(pkg.GoFiles) > 0 {
					rel, _ := filepath.Rel(root, p)
					visit(module + "/" + filepath.ToSlash(rel))
				}
			}
			return nil
		})
	}
	return g
}

// TestImportBoundaries fails for every path from a package to one it must
// never import, and names the chain of imports.
func TestImportBoundaries(t *testing.T) {
	g := graph(t)
	if len(g) < 10 {
		t.Fatalf("found only %d packages; the walk is broken", len(g))
	}
	for _, r := range rules {
		for _, from := range slices.Sorted(maps.Keys(g)) {
			if !match(r.from, from) {
				continue
			}
			if chain := findPath(g, from, r.never); chain != nil {
				t.Errorf("%s imports %s (%s); but %s",
					from, chain[len(chain)-1], strings.Join(chain, " -> "), r.why)
			}
		}
	}
}

// findPath returns a chain of imports from from to a package matching any
// of never, or nil.
func findPath(g map[string][]string, from string, never []string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, imp := range g[p] {
			if _, seen := prev[imp]; seen {
				continue
			}
			prev[imp] = p
			if slices.ContainsFunc(never, func(n string) bool { return match(n, imp) }) {
				var chain []string
				for q := imp; q != ""; q = prev[q] {
					chain = append([]string{q}, chain...)
				}
				return chain
			}
			if strings.HasPrefix(imp, module) {
				queue = append(queue, imp)
			}
		}
	}
	return nil
}
