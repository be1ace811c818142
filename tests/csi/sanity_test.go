package csi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"hoard.dev/hoard/tests/testenv"
)

// CSISanityBinEnv names the environment variable that points at a
// csi-sanity binary.
const CSISanityBinEnv = "HOARD_CSI_SANITY_BIN"

// csiSanityVersion is the pinned csi-test module (see DESIGN.md).
const csiSanityVersion = "github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@v5.6.0"

// csiSanityBinary finds csi-sanity: $HOARD_CSI_SANITY_BIN, else
// CacheDir()/bin/csi-sanity, else csi-sanity on PATH.
func csiSanityBinary() (string, error) {
	if p := os.Getenv(CSISanityBinEnv); p != "" {
		_, err := os.Stat(p)
		return p, err
	}
	p := filepath.Join(testenv.CacheDir(), "bin", "csi-sanity")
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		return p, nil
	}
	p, err := exec.LookPath("csi-sanity")
	if err != nil {
		return "", fmt.Errorf("no csi-sanity in $%s, %s or PATH (GOBIN=%s go install %s)",
			CSISanityBinEnv, filepath.Join(testenv.CacheDir(), "bin", "csi-sanity"),
			filepath.Join(testenv.CacheDir(), "bin"), csiSanityVersion)
	}
	return p, nil
}

// TestSanity runs the CSI spec's conformance suite, csi-sanity, against
// 'hoard csi --mode all' (controller and node in one process, as the suite
// wants) with a mounter, both backed by MinIO: volumes are prefixes of a
// bucket, created and deleted with the provisioner secrets, staged with the
// node-stage secrets. Any failed spec fails the test; the counts are logged.
func TestSanity(t *testing.T) {
	testenv.RequireFUSE(t)
	bin, err := csiSanityBinary()
	testenv.RequireOrSkip(t, "csi-sanity", err)
	e := newEnv(t, envOptions{mode: "all", pluginArgs: []string{"--accept-single-node-writer"}})
	e.minio.MakeBucket(t, "sanity")

	dir := filepath.Join(e.root, "sanity")
	os.MkdirAll(dir, 0o700)
	params := filepath.Join(dir, "params.yaml")
	secrets := filepath.Join(dir, "secrets.yaml")
	writeFile(t, params, fmt.Sprintf("bucket: sanity\nendpoint: %s\nregion: us-east-1\npathStyle: \"true\"\nprefix: csi-sanity\ndeletePolicy: delete\n",
		e.minio.URL()))
	var sb strings.Builder
	for _, k := range []string{"CreateVolumeSecret", "DeleteVolumeSecret", "NodeStageVolumeSecret", "NodePublishVolumeSecret"} {
		fmt.Fprintf(&sb, "%s:\n  accessKeyID: %q\n  secretAccessKey: %q\n", k, e.minio.AccessKey(), e.minio.SecretKey())
	}
	writeFile(t, secrets, sb.String())
	report := filepath.Join(dir, "report.json")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--csi.endpoint=unix://"+e.csiSock,
		"--csi.mountdir="+filepath.Join(dir, "mount"),
		"--csi.stagingdir="+filepath.Join(dir, "staging"),
		"--csi.testvolumeparameters="+params,
		"--csi.secrets="+secrets,
		"--ginkgo.no-color",
		"--ginkgo.json-report="+report,
	)
	start := time.Now()
	out, runErr := cmd.CombinedOutput()
	took := time.Since(start).Round(time.Millisecond)

	specs, err := readGinkgoReport(report)
	if err != nil {
		t.Fatalf("csi-sanity (%v) wrote no usable report: %v\n%s", runErr, err, tail(string(out)))
	}
	counts := map[string]int{}
	var failed []string
	for _, s := range specs {
		counts[s.State]++
		if s.State != "passed" && s.State != "skipped" && s.State != "pending" {
			failed = append(failed, fmt.Sprintf("%s: %s", s.name(), firstLine(s.Failure.Message)))
		}
	}
	t.Logf("csi-sanity in %v: %d passed, %d failed, %d skipped, %d pending", took,
		counts["passed"], len(failed), counts["skipped"], counts["pending"])
	if testing.Verbose() {
		byState := map[string][]string{}
		for _, s := range specs {
			byState[s.State] = append(byState[s.State], s.name())
		}
		for _, state := range []string{"passed", "skipped", "pending"} {
			sort.Strings(byState[state])
			t.Logf("%s specs:\n  %s", state, strings.Join(byState[state], "\n  "))
		}
	}
	// The node specs really staged and published (and did not skip).
	logs := e.plugin.logs()
	staged, published := strings.Count(logs, `msg="node: volume staged"`), strings.Count(logs, `msg="node: volume published"`)
	t.Logf("the plugin staged %d and published %d volumes", staged, published)
	if counts["passed"] > 0 && (staged < 3 || published < 3) {
		t.Errorf("csi-sanity passed, but the plugin staged only %d and published %d volumes", staged, published)
	}
	for _, f := range failed {
		t.Errorf("csi-sanity failed: %s", f)
	}
	if runErr != nil && len(failed) == 0 {
		t.Errorf("csi-sanity exited with %v and no failed spec in its report:\n%s", runErr, tail(string(out)))
	}
	if t.Failed() {
		t.Logf("csi-sanity output (tail):\n%s\nplugin log (tail):\n%s", tail(string(out)), tail(e.plugin.logs()))
	}
}

// ginkgoSpec is the part of a Ginkgo JSON report's spec that matters here.
type ginkgoSpec struct {
	ContainerHierarchyTexts []string
	LeafNodeText            string
	State                   string
	Failure                 struct{ Message string }
}

func (s ginkgoSpec) name() string {
	return strings.TrimSpace(strings.Join(append(s.ContainerHierarchyTexts, s.LeafNodeText), " "))
}

func readGinkgoReport(path string) ([]ginkgoSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var suites []struct{ SpecReports []ginkgoSpec }
	if err := json.Unmarshal(b, &suites); err != nil {
		return nil, err
	}
	var out []ginkgoSpec
	for _, s := range suites {
		for _, r := range s.SpecReports {
			if r.LeafNodeText == "" && len(r.ContainerHierarchyTexts) == 0 {
				continue // suite-level nodes (BeforeSuite, ReportAfterSuite)
			}
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no specs in the report")
	}
	return out, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
