package driver_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/driver"
	"hoard.dev/hoard/internal/metrics"
	"hoard.dev/hoard/tests/testenv"
)

// fakeNode stages nothing: NodeStageVolume fails with the reason a real
// mount failure gives, NodePublishVolume succeeds.
type fakeNode struct {
	csi.UnimplementedNodeServer
}

func (fakeNode) NodeStageVolume(context.Context, *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	return nil, status.Error(codes.NotFound, `volume "v1": s3://minio:9000/ds: the bucket does not exist`)
}

func (fakeNode) NodePublishVolume(context.Context, *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	return &csi.NodePublishVolumeResponse{}, nil
}

// TestCallLineAndMetrics: each call is one JSON log line with the volume,
// the pod, the source and the duration (a failure with its reason), and is
// counted by method and code.
func TestCallLineAndMetrics(t *testing.T) {
	logs := &testenv.LogBuffer{}
	reg := prometheus.NewRegistry()
	conn := serve(t, driver.Services{Identity: &driver.Identity{}, Node: fakeNode{}, Metrics: reg,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	c := csi.NewNodeClient(conn)
	vc := map[string]string{"bucket": "ds", "prefix": "train/", "endpoint": "http://minio:9000",
		"csi.storage.k8s.io/pod.name": "trainer-0", "csi.storage.k8s.io/pod.namespace": "ml"}
	if _, err := c.NodeStageVolume(ctxT(t), &csi.NodeStageVolumeRequest{VolumeId: "v1", VolumeContext: vc,
		Secrets: map[string]string{"secretAccessKey": "hunter2"}}); status.Code(err) != codes.NotFound {
		t.Fatalf("NodeStageVolume = %v", err)
	}
	for range 2 {
		if _, err := c.NodePublishVolume(ctxT(t), &csi.NodePublishVolumeRequest{VolumeId: "v1", VolumeContext: vc}); err != nil {
			t.Fatal(err)
		}
	}

	var lines []map[string]any
	for l := range strings.Lines(logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", l, err)
		}
		if m["msg"] == "csi call" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 3 {
		t.Fatalf("%d call lines for 3 calls:\n%s", len(lines), logs)
	}
	for _, l := range lines {
		for k, want := range map[string]string{"volume_id": "v1", "pod": "ml/trainer-0", "source": "s3://minio:9000/ds/train"} {
			if l[k] != want {
				t.Errorf("%s: %s = %v, want %q", l["method"], k, l[k], want)
			}
		}
		if _, ok := l["duration"]; !ok {
			t.Errorf("%s: no duration", l["method"])
		}
	}
	if e, _ := lines[0]["error"].(string); !strings.Contains(e, "the bucket does not exist") || lines[0]["code"] != "NotFound" {
		t.Errorf("the failed stage's line lacks its reason: %v", lines[0])
	}
	if strings.Contains(logs.String(), "hunter2") {
		t.Error("a secret reached the log")
	}

	counts := map[string]uint64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metrics.CSICallDuration.Name() {
			t.Errorf("unexpected metric %s", mf.GetName())
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, lp := range m.GetLabel() {
				key += lp.GetName() + "=" + lp.GetValue() + " "
			}
			counts[strings.TrimSpace(key)] = m.GetHistogram().GetSampleCount()
		}
	}
	want := map[string]uint64{"code=NotFound method=NodeStageVolume": 1, "code=OK method=NodePublishVolume": 2}
	if len(counts) != len(want) {
		t.Errorf("call counts %v, want %v", counts, want)
	}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s: %d calls counted, want %d", k, counts[k], n)
		}
	}
}
