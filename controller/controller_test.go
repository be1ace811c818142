package controller_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/controller"
	"hoard.dev/hoard/driver"
	"hoard.dev/hoard/volume"
)

// TestParameters runs CreateVolume over gRPC with every StorageClass
// parameter, good values and bad: a bad value is INVALID_ARGUMENT naming the
// parameter.
func TestParameters(t *testing.T) {
	e := newEnv(t, nil, controller.Config{}, "text")
	long := strings.Repeat("p", 513)
	for _, tc := range []struct {
		name string
		kv   []string
		// wantParam is the parameter the error must name; "" means success.
		wantParam string
	}{
		{"minimal", nil, ""},
		{"bucket missing", []string{"bucket", "-"}, "bucket"},
		{"bucket invalid", []string{"bucket", "Not_A_Bucket!"}, "bucket"},
		{"bucket too short", []string{"bucket", "ab"}, "bucket"},

		{"prefix", []string{"prefix", "datasets/team-a"}, ""},
		{"prefix trailing slash", []string{"prefix", "datasets/team-a/"}, ""},
		{"prefix unicode", []string{"prefix", "données/équipe"}, ""},
		{"prefix leading slash", []string{"prefix", "/datasets"}, "prefix"},
		{"prefix only slash", []string{"prefix", "/"}, "prefix"},
		{"prefix empty segment", []string{"prefix", "a//b"}, "prefix"},
		{"prefix dot", []string{"prefix", "./a"}, "prefix"},
		{"prefix dotdot", []string{"prefix", "a/../b"}, "prefix"},
		{"prefix control char", []string{"prefix", "a\nb"}, "prefix"},
		{"prefix too long", []string{"prefix", long}, "prefix"},

		{"endpoint with scheme", []string{"endpoint", "http://" + e.m.Endpoint(), "insecure", "-"}, ""},
		{"endpoint scheme and insecure agree", []string{"endpoint", "http://" + e.m.Endpoint()}, ""},
		{"endpoint https with insecure", []string{"endpoint", "https://" + e.m.Endpoint()}, "insecure"},
		{"endpoint ftp", []string{"endpoint", "ftp://" + e.m.Endpoint()}, "endpoint"},
		{"endpoint path", []string{"endpoint", "http://" + e.m.Endpoint() + "/bucket"}, "endpoint"},
		{"endpoint bare path", []string{"endpoint", e.m.Endpoint() + "/bucket"}, "endpoint"},
		{"endpoint credentials", []string{"endpoint", "http://user:pw@" + e.m.Endpoint()}, "endpoint"},
		{"endpoint port zero", []string{"endpoint", "127.0.0.1:0"}, "endpoint"},
		{"endpoint port too big", []string{"endpoint", "127.0.0.1:99999"}, "endpoint"},
		{"endpoint space", []string{"endpoint", "my host:9000"}, "endpoint"},

		{"region missing", []string{"region", "-"}, ""},
		{"region space", []string{"region", "us east"}, "region"},
		{"region slash", []string{"region", "us/east"}, "region"},

		{"pathStyle false", []string{"pathStyle", "false"}, ""},
		{"pathStyle yes", []string{"pathStyle", "yes"}, "pathStyle"},
		{"pathStyle TRUE", []string{"pathStyle", "TRUE"}, "pathStyle"},
		{"insecure 1", []string{"insecure", "1"}, "insecure"},

		{"provisioning prefix", []string{"provisioning", "prefix"}, ""},
		{"provisioning bucket", []string{"provisioning", "bucket", "prefix", "datasets"}, ""},
		{"provisioning static", []string{"provisioning", "static"}, "provisioning"},
		{"deletePolicy retain", []string{"deletePolicy", "retain"}, ""},
		{"deletePolicy delete", []string{"deletePolicy", "delete"}, ""},
		{"deletePolicy Delete", []string{"deletePolicy", "Delete"}, "deletePolicy"},
		{"deletePolicy delete with bucket", []string{"deletePolicy", "delete", "provisioning", "bucket"}, "deletePolicy"},

		{"uid", []string{"uid", "1000"}, ""},
		{"gid zero", []string{"gid", "0"}, ""},
		{"uid negative", []string{"uid", "-1"}, "uid"},
		{"uid word", []string{"uid", "root"}, "uid"},
		{"uid too big", []string{"uid", "4294967295"}, "uid"},
		{"gid fraction", []string{"gid", "1.5"}, "gid"},
		{"fileMode", []string{"fileMode", "0444"}, ""},
		{"fileMode no zero", []string{"fileMode", "640"}, ""},
		{"fileMode 0o", []string{"fileMode", "0o640"}, ""},
		{"fileMode not octal", []string{"fileMode", "0999"}, "fileMode"},
		{"fileMode setuid", []string{"fileMode", "04755"}, "fileMode"},
		{"fileMode zero", []string{"fileMode", "0"}, "fileMode"},
		{"fileMode symbolic", []string{"fileMode", "r--r--r--"}, "fileMode"},
		{"dirMode", []string{"dirMode", "0755"}, ""},
		{"dirMode empty", []string{"dirMode", ""}, "dirMode"},
		{"metadataTTL", []string{"metadataTTL", "10m"}, ""},
		{"metadataTTL zero", []string{"metadataTTL", "0s"}, ""},
		{"metadataTTL no unit", []string{"metadataTTL", "10"}, "metadataTTL"},
		{"metadataTTL negative", []string{"metadataTTL", "-1s"}, "metadataTTL"},
		{"cacheCluster", []string{"cacheCluster", "default"}, ""},
		{"cacheCluster slash", []string{"cacheCluster", "a/b"}, "cacheCluster"},
		{"cacheCluster empty", []string{"cacheCluster", ""}, "cacheCluster"},
		{"cacheCluster etcd URL", []string{"cacheCluster", "http://etcd:2379"}, "cacheCluster"},

		{"pvc metadata", []string{controller.ParamPVCName, "claim", controller.ParamPVCNamespace, "team-a", controller.ParamPVName, "pvc-1234"}, ""},
		{"pvc name without namespace", []string{controller.ParamPVCName, "claim"}, controller.ParamPVCNamespace},
		{"pvc namespace without name", []string{controller.ParamPVCNamespace, "team-a"}, controller.ParamPVCName},
		{"pvc namespace invalid", []string{controller.ParamPVCName, "claim", controller.ParamPVCNamespace, "Team_A"}, controller.ParamPVCNamespace},
		{"pvc name invalid", []string{controller.ParamPVCName, "Claim!", controller.ParamPVCNamespace, "team-a"}, controller.ParamPVCName},
		{"pv name invalid", []string{controller.ParamPVName, "PV 1"}, controller.ParamPVName},
		{"other kubernetes key", []string{"csi.storage.k8s.io/some-future-key", "x"}, ""},

		{"unknown", []string{"bukket", "data"}, "bukket"},
		{"credentials as parameter", []string{"secretAccessKey", "x"}, "secretAccessKey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.c.CreateVolume(ctxT(t), e.createReq("pvc-params", e.params(tc.kv...)))
			if tc.wantParam == "" {
				if err != nil {
					t.Fatalf("CreateVolume: %v", err)
				}
				if _, err := volume.ParseContext(resp.GetVolume().GetVolumeContext()); err != nil {
					t.Errorf("the volume context does not parse: %v", err)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), `"`+tc.wantParam+`"`) {
				t.Errorf("CreateVolume = %v; want InvalidArgument naming %q", err, tc.wantParam)
			}
		})
	}
}

// TestVolumeContext checks what a node gets: the volume's bucket and prefix,
// how to reach the store, the options, and nothing else.
func TestVolumeContext(t *testing.T) {
	e := newEnv(t, nil, controller.Config{}, "text")
	params := e.params("prefix", "datasets/", "endpoint", "http://"+e.m.Endpoint(), "insecure", "-",
		"uid", "1000", "gid", "2000", "fileMode", "440", "dirMode", "0o550", "metadataTTL", "90m", "cacheCluster", "east",
		controller.ParamPVCName, "my-claim", controller.ParamPVCNamespace, "team-a", controller.ParamPVName, "pvc-0123")
	resp, err := e.c.CreateVolume(ctxT(t), e.createReq("pvc-0123", params))
	if err != nil {
		t.Fatal(err)
	}
	vol := resp.GetVolume()
	got := vol.GetVolumeContext()
	wantPrefix := "datasets/team-a/my-claim-"
	if !strings.HasPrefix(got["prefix"], wantPrefix) || len(got["prefix"]) != len(wantPrefix)+8 {
		t.Errorf("prefix %q, want %s<8 hex digits>", got["prefix"], wantPrefix)
	}
	want := map[string]string{
		"bucket": "data", "prefix": got["prefix"], "endpoint": e.m.Endpoint(), "region": "us-east-1",
		"pathStyle": "true", "insecure": "true", "uid": "1000", "gid": "2000", "fileMode": "0440", "dirMode": "0550",
		"metadataTTL": "1h30m0s", "cacheCluster": "east",
	}
	if !maps.Equal(got, want) {
		t.Errorf("volume context\n got %v\nwant %v", got, want)
	}
	if vol.GetCapacityBytes() != 0 {
		t.Errorf("capacity %d, want 0 (unknown)", vol.GetCapacityBytes())
	}
	if id := vol.GetVolumeId(); !strings.HasPrefix(id, "h1/pr/") || len(id) != 38 {
		t.Errorf("volume ID %q, want h1/pr/<32 hex digits>", id)
	}

	// A delete volume whose ID would be too long with the readable prefix
	// gets the compact one.
	resp, err = e.c.CreateVolume(ctxT(t), e.createReq("pvc-0123abcd-4567-89ef-0123-456789abcdef", e.params(
		"prefix", "datasets", "deletePolicy", "delete",
		controller.ParamPVCNamespace, strings.Repeat("n", 63), controller.ParamPVCName, "my-claim")))
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.GetVolume().GetVolumeContext()["prefix"]; !regexp.MustCompile(`^datasets/[0-9a-f]{16}$`).MatchString(p) {
		t.Errorf("prefix %q, want datasets/<16 hex digits>", p)
	}
	if id := resp.GetVolume().GetVolumeId(); len(id) > 128 || !strings.HasPrefix(id, "h2/pdsi/") {
		t.Errorf("volume ID %q (%d bytes)", id, len(id))
	}

	// Without PVC metadata the volume is named after itself.
	resp, err = e.c.CreateVolume(ctxT(t), e.createReq("pvc-0123", e.params("prefix", "datasets")))
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.GetVolume().GetVolumeContext()["prefix"]; p != "datasets/pvc-0123" {
		t.Errorf("prefix %q, want datasets/pvc-0123", p)
	}
	// provisioning=bucket shows the StorageClass's prefix itself.
	resp, err = e.c.CreateVolume(ctxT(t), e.createReq("pvc-0123", e.params("prefix", "datasets", "provisioning", "bucket")))
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.GetVolume().GetVolumeContext()["prefix"]; p != "datasets" {
		t.Errorf("prefix %q, want datasets", p)
	}
	if id := resp.GetVolume().GetVolumeId(); !strings.HasPrefix(id, "h1/br/") {
		t.Errorf("volume ID %q, want h1/br/...", id)
	}
}

// TestIdempotency: the same request gives the same volume; another request
// with the same name gives another volume. The controller keeps no record of
// names, so it cannot answer ALREADY_EXISTS (see the package comment).
func TestIdempotency(t *testing.T) {
	e := newEnv(t, nil, controller.Config{}, "text")
	for _, params := range []map[string]string{
		e.params(),
		e.params("deletePolicy", "delete", "prefix", "team"),
		e.params("provisioning", "bucket"),
		e.params(controller.ParamPVCName, "c", controller.ParamPVCNamespace, "ns"),
	} {
		req := e.createReq("pvc-same", params)
		a, err := e.c.CreateVolume(ctxT(t), req)
		if err != nil {
			t.Fatal(err)
		}
		req.CapacityRange = &csi.CapacityRange{RequiredBytes: 5 << 30}
		b, err := e.c.CreateVolume(ctxT(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if a.GetVolume().GetVolumeId() != b.GetVolume().GetVolumeId() ||
			!maps.Equal(a.GetVolume().GetVolumeContext(), b.GetVolume().GetVolumeContext()) ||
			a.GetVolume().GetCapacityBytes() != b.GetVolume().GetCapacityBytes() {
			t.Errorf("two CreateVolume calls with params %v differ:\n%v\n%v", params, a, b)
		}
	}

	// Same name, other parameters: another volume, never the same ID.
	ids := map[string]string{}
	for _, kv := range [][]string{
		nil,
		{"uid", "1"},
		{"prefix", "elsewhere"},
		{"deletePolicy", "delete"},
		{"provisioning", "bucket"},
		{"pathStyle", "false"},
	} {
		resp, err := e.c.CreateVolume(ctxT(t), e.createReq("pvc-same", e.params(kv...)))
		if err != nil {
			t.Fatalf("CreateVolume with %v: %v", kv, err)
		}
		id := resp.GetVolume().GetVolumeId()
		if prev, ok := ids[id]; ok {
			t.Errorf("params %v and %s gave the same ID %s", kv, prev, id)
		}
		ids[id] = strings.Join(kv, "=")
	}
}

// TestDeletePolicy seeds a bucket with a volume's objects, objects of
// siblings whose names start with the volume's, and others; deleting the
// volume removes exactly its own.
func TestDeletePolicy(t *testing.T) {
	e := newEnv(t, nil, controller.Config{}, "text")
	vol := []string{"team/vol-a/", "team/vol-a/x", "team/vol-a/sub/y", "team/vol-a/sub/deeper/z"}
	// (No object "team/vol-a": MinIO cannot hold an object and a prefix of
	// the same name.)
	others := []string{"team/vol-a-other/x", "team/vol-ab", "team/vol-a.txt", "team/vol-b/x",
		"other/vol-a/x", "vol-a/x", "team-vol-a/x"}
	for _, k := range append(slices.Clone(vol), others...) {
		e.m.Put(t, "data", k, []byte(k))
	}
	all := slices.Sorted(slices.Values(append(slices.Clone(vol), others...)))
	remaining := slices.Sorted(slices.Values(others))
	check := func(what string, want []string) {
		t.Helper()
		if got := e.keys(t); !slices.Equal(got, want) {
			t.Errorf("%s: the bucket holds\n%q\nwant\n%q", what, got, want)
		}
	}
	deleteVolume := func(params map[string]string) {
		t.Helper()
		resp, err := e.c.CreateVolume(ctxT(t), e.createReq("vol-a", params))
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.GetVolume().GetVolumeContext()["prefix"]; params["provisioning"] != "bucket" && p != "team/vol-a" {
			t.Fatalf("volume prefix %q, want team/vol-a", p)
		}
		for range 2 { // the second time there is nothing left to do
			if _, err := e.c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: resp.GetVolume().GetVolumeId(), Secrets: e.secrets()}); err != nil {
				t.Fatalf("DeleteVolume: %v", err)
			}
		}
	}

	deleteVolume(e.params("prefix", "team"))
	check("after deleting a retain volume", all)
	deleteVolume(e.params("prefix", "team", "provisioning", "bucket"))
	check("after deleting a bucket volume", all)
	deleteVolume(e.params("prefix", "team/", "provisioning", "bucket", "deletePolicy", "retain"))
	check("after deleting a bucket volume", all)

	// Forged IDs naming team/vol-a delete nothing: one altered from a
	// genuine ID of another volume, one signed with another controller's
	// key, one of the old unkeyed form (its check is a plain SHA-256).
	resp, err := e.c.CreateVolume(ctxT(t), e.createReq("vol-b", e.params("prefix", "team", "deletePolicy", "delete")))
	if err != nil {
		t.Fatal(err)
	}
	altered := strings.Replace(resp.GetVolume().GetVolumeId(), "team/vol-b", "team/vol-a", 1)
	otherKeys, err := volume.ParseIDKeys([]byte("another-installation-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	signedElsewhere, _ := otherKeys.DeleteID(volume.ID{Provisioning: "prefix", DeleteData: true,
		Endpoint: resp.GetVolume().GetVolumeContext()["endpoint"], Region: "us-east-1", PathStyle: true, Insecure: true,
		Bucket: "data", Prefix: "team/vol-a/"})
	body := resp.GetVolume().GetVolumeContext()["endpoint"] + "/us-east-1/data/team/vol-a"
	sum := sha256.Sum256([]byte("hoard.dev volume id h1/pdsi/" + body))
	unkeyed := "h1/pdsi/" + hex.EncodeToString(sum[:])[:8] + "/" + body
	for _, forged := range []string{altered, signedElsewhere, unkeyed} {
		if _, err := e.c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: forged, Secrets: e.secrets()}); err != nil {
			t.Fatalf("DeleteVolume(%q): %v", forged, err)
		}
		check("after DeleteVolume of the forged ID "+forged, all)
	}

	deleteVolume(e.params("prefix", "team", "deletePolicy", "delete"))
	check("after deleting a delete volume", remaining)

	// Deleting many objects: the deletion pages through them.
	var many []string
	for i := range 1100 {
		many = append(many, "team/vol-a/many/"+string(rune('a'+i%26))+strings.Repeat("x", i%7)+"-"+time.Duration(i).String())
	}
	for _, k := range many {
		e.m.Put(t, "data", k, nil)
	}
	deleteVolume(e.params("prefix", "team", "deletePolicy", "delete"))
	check("after deleting 1100 objects", remaining)
}

// TestDeleteResumes: a deletion that runs out of time fails with
// DEADLINE_EXCEEDED and the retry finishes it.
func TestDeleteResumes(t *testing.T) {
	e := newEnv(t, nil, controller.Config{DeleteTimeout: time.Nanosecond}, "text")
	e.m.Put(t, "data", "vol/x", nil)
	resp, err := e.c.CreateVolume(ctxT(t), e.createReq("vol", e.params("deletePolicy", "delete")))
	if err != nil {
		t.Fatal(err)
	}
	req := &csi.DeleteVolumeRequest{VolumeId: resp.GetVolume().GetVolumeId(), Secrets: e.secrets()}
	// No deadline from the client: Config.DeleteTimeout applies.
	if _, err := e.c.DeleteVolume(context.Background(), req); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("DeleteVolume with no time: %v, want DeadlineExceeded", err)
	}
	if got := e.keys(t); !slices.Equal(got, []string{"vol/x"}) {
		t.Fatalf("keys %q", got)
	}
	// With the CO's deadline the controller's own bound does not apply.
	if _, err := e.c.DeleteVolume(ctxT(t), req); err != nil {
		t.Fatalf("retried DeleteVolume: %v", err)
	}
	if got := e.keys(t); len(got) != 0 {
		t.Errorf("keys %q left", got)
	}
}

func TestDeleteVolume(t *testing.T) {
	e := newEnv(t, nil, controller.Config{}, "text")
	for _, tc := range []struct {
		name string
		req  *csi.DeleteVolumeRequest
		want codes.Code
	}{
		{"no volume ID", &csi.DeleteVolumeRequest{}, codes.InvalidArgument},
		{"not a hoard ID", &csi.DeleteVolumeRequest{VolumeId: "some-volume"}, codes.OK},
		{"altered ID", &csi.DeleteVolumeRequest{VolumeId: "h1/pdsi/00000000/" + e.m.Endpoint() + "/us-east-1/data/team"}, codes.OK},
		{"retain ID", &csi.DeleteVolumeRequest{VolumeId: "h1/pr/0123456789abcdef0123456789abcdef"}, codes.OK},
	} {
		if _, err := e.c.DeleteVolume(ctxT(t), tc.req); status.Code(err) != tc.want {
			t.Errorf("%s: DeleteVolume = %v, want %v", tc.name, err, tc.want)
		}
	}

	// A delete volume in a bucket that is gone is gone too.
	e.m.MakeBucket(t, "doomed")
	resp, err := e.c.CreateVolume(ctxT(t), e.createReq("v", e.params("bucket", "doomed", "deletePolicy", "delete")))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Client().RemoveBucket(ctxT(t), "doomed"); err != nil {
		t.Fatal(err)
	}
	id := resp.GetVolume().GetVolumeId()
	if _, err := e.c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: id, Secrets: e.secrets()}); err != nil {
		t.Errorf("DeleteVolume in a deleted bucket: %v", err)
	}
	// Secrets without a secret key: the message names the key.
	_, err = e.c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: id, Secrets: map[string]string{"accessKeyID": "x"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "secretAccessKey") {
		t.Errorf("DeleteVolume without secretAccessKey: %v", err)
	}
}

// TestBucketErrors: what goes wrong at the store maps to the code the spec
// asks for, and the message says what.
func TestBucketErrors(t *testing.T) {
	e := newEnv(t, nil, controller.Config{}, "text")
	wrongSecret := e.secrets()
	wrongSecret["secretAccessKey"] = "not-the-secret-Zq8uP"
	wrongKey := e.secrets()
	wrongKey["accessKeyID"] = "nobody"
	for _, tc := range []struct {
		name    string
		params  map[string]string
		secrets map[string]string
		want    codes.Code
		wantMsg string
	}{
		{"missing bucket", e.params("bucket", "nobucket"), e.secrets(), codes.NotFound, "does not exist"},
		{"wrong secret", e.params(), wrongSecret, codes.Unauthenticated, "credentials"},
		{"unknown key", e.params(), wrongKey, codes.Unauthenticated, "credentials"},
		{"secrets without keys", e.params(), map[string]string{"username": "u"}, codes.InvalidArgument, `"accessKeyID"`},
		{"secrets without secret key", e.params(), map[string]string{"accessKeyID": "u"}, codes.InvalidArgument, `"secretAccessKey"`},
		{"unreachable store", e.params("endpoint", "127.0.0.1:1"), e.secrets(), codes.Unavailable, "127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := e.createReq("v", tc.params)
			req.Secrets = tc.secrets
			_, err := e.c.CreateVolume(ctxT(t), req)
			if status.Code(err) != tc.want || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("CreateVolume = %v, want %v saying %q", err, tc.want, tc.wantMsg)
			}
		})
	}
}

func TestCreateVolumeRequests(t *testing.T) {
	e := newEnv(t, nil, controller.Config{}, "text")
	lenient := newEnv(t, e.m, controller.Config{AcceptSingleNodeWriter: true}, "text")
	block := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
	}
	mode := func(m csi.VolumeCapability_AccessMode_Mode) []*csi.VolumeCapability {
		return []*csi.VolumeCapability{mountCap(m)}
	}
	for _, tc := range []struct {
		name        string
		edit        func(*csi.CreateVolumeRequest)
		want        codes.Code
		wantLenient codes.Code // with AcceptSingleNodeWriter
		wantMsg     string
	}{
		{"read only many", func(r *csi.CreateVolumeRequest) {}, codes.OK, codes.OK, ""},
		{"read only once", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY)
		}, codes.OK, codes.OK, ""},
		{"both read-only modes", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = append(mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY), readOnlyMany)
		}, codes.OK, codes.OK, ""},
		{"single node writer", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
		}, codes.InvalidArgument, codes.OK, "read-only volumes: the FUSE view does not support writes yet"},
		{"reader and writer", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = append(mode(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER), readOnlyMany)
		}, codes.InvalidArgument, codes.InvalidArgument, "volume_capabilities[0]"},
		{"multi node single writer", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = mode(csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER)
		}, codes.InvalidArgument, codes.InvalidArgument, "read-only"},
		{"single node single writer", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)
		}, codes.InvalidArgument, codes.InvalidArgument, "read-only"},
		{"single node multi writer", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = mode(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER)
		}, codes.InvalidArgument, codes.InvalidArgument, "read-only"},
		{"block", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{block}
		}, codes.InvalidArgument, codes.InvalidArgument, "block"},
		{"no access mode", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}}}
		}, codes.InvalidArgument, codes.InvalidArgument, "access_mode"},
		{"no access type", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{{AccessMode: readOnlyMany.AccessMode}}
		}, codes.InvalidArgument, codes.InvalidArgument, "access_type"},
		{"no capabilities", func(r *csi.CreateVolumeRequest) { r.VolumeCapabilities = nil },
			codes.InvalidArgument, codes.InvalidArgument, "volume_capabilities"},
		{"no name", func(r *csi.CreateVolumeRequest) { r.Name = "" }, codes.InvalidArgument, codes.InvalidArgument, "name"},
		{"name of 128 bytes", func(r *csi.CreateVolumeRequest) { r.Name = strings.Repeat("n", 128) }, codes.OK, codes.OK, ""},
		{"name too long", func(r *csi.CreateVolumeRequest) { r.Name = strings.Repeat("n", 129) }, codes.InvalidArgument, codes.InvalidArgument, "name"},
		{"name with control character", func(r *csi.CreateVolumeRequest) { r.Name = "a\x01b" }, codes.InvalidArgument, codes.InvalidArgument, "name"},
		{"name that is no key segment", func(r *csi.CreateVolumeRequest) { r.Name = "../a/b c" }, codes.OK, codes.OK, ""},
		{"capacity", func(r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: 1 << 40, LimitBytes: 1 << 41}
		}, codes.OK, codes.OK, ""},
		{"capacity above limit", func(r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: 2, LimitBytes: 1}
		}, codes.InvalidArgument, codes.InvalidArgument, "capacity_range"},
		{"negative capacity", func(r *csi.CreateVolumeRequest) { r.CapacityRange = &csi.CapacityRange{RequiredBytes: -1} },
			codes.InvalidArgument, codes.InvalidArgument, "capacity_range"},
		{"from a snapshot", func(r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: "s"}}}
		}, codes.InvalidArgument, codes.InvalidArgument, "volume_content_source"},
		{"mutable parameters", func(r *csi.CreateVolumeRequest) { r.MutableParameters = map[string]string{"a": "b"} },
			codes.InvalidArgument, codes.InvalidArgument, "mutable_parameters"},
		{"long delete prefix", func(r *csi.CreateVolumeRequest) {
			r.Parameters = e.params("deletePolicy", "delete", "prefix", strings.Repeat("long/", 20))
		}, codes.InvalidArgument, codes.InvalidArgument, `"deletePolicy"`},
		{"long retain prefix", func(r *csi.CreateVolumeRequest) {
			r.Parameters = e.params("prefix", strings.Repeat("long/", 20))
		}, codes.OK, codes.OK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, x := range []struct {
				e    *env
				want codes.Code
			}{{e, tc.want}, {lenient, tc.wantLenient}} {
				req := x.e.createReq("pvc-req", x.e.params())
				tc.edit(req)
				resp, err := x.e.c.CreateVolume(ctxT(t), req)
				if status.Code(err) != x.want || (err != nil && !strings.Contains(status.Convert(err).Message(), tc.wantMsg)) {
					t.Errorf("CreateVolume = %v, want %v with %q", err, x.want, tc.wantMsg)
				}
				if err == nil && len(resp.GetVolume().GetVolumeId()) > 128 {
					t.Errorf("volume ID of %d bytes", len(resp.GetVolume().GetVolumeId()))
				}
			}
		})
	}
}

func TestValidateVolumeCapabilities(t *testing.T) {
	e := newEnv(t, nil, controller.Config{}, "text")
	resp, err := e.c.CreateVolume(ctxT(t), e.createReq("v", e.params("deletePolicy", "delete")))
	if err != nil {
		t.Fatal(err)
	}
	vol := resp.GetVolume()
	other, err := e.c.CreateVolume(ctxT(t), e.createReq("w", e.params("deletePolicy", "delete")))
	if err != nil {
		t.Fatal(err)
	}
	writer := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	for _, tc := range []struct {
		name          string
		req           *csi.ValidateVolumeCapabilitiesRequest
		want          codes.Code
		wantConfirmed bool
		wantMsg       string
	}{
		{"reader", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: vol.GetVolumeId(), VolumeCapabilities: []*csi.VolumeCapability{readOnlyMany}},
			codes.OK, true, ""},
		{"with its context and parameters", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: vol.GetVolumeId(),
			VolumeContext: vol.GetVolumeContext(), Parameters: e.params(), VolumeCapabilities: []*csi.VolumeCapability{readOnlyMany}},
			codes.OK, true, ""},
		{"writer", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: vol.GetVolumeId(), VolumeCapabilities: []*csi.VolumeCapability{readOnlyMany, writer}},
			codes.OK, false, "read-only volumes"},
		{"no ID", &csi.ValidateVolumeCapabilitiesRequest{VolumeCapabilities: []*csi.VolumeCapability{readOnlyMany}},
			codes.InvalidArgument, false, "volume_id"},
		{"no capabilities", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: vol.GetVolumeId()},
			codes.InvalidArgument, false, "volume_capabilities"},
		{"unknown volume", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "pvc-unknown", VolumeCapabilities: []*csi.VolumeCapability{readOnlyMany}},
			codes.NotFound, false, "pvc-unknown"},
		{"another volume's context", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: vol.GetVolumeId(),
			VolumeContext: other.GetVolume().GetVolumeContext(), VolumeCapabilities: []*csi.VolumeCapability{readOnlyMany}},
			codes.InvalidArgument, false, "volume_context"},
		{"bad parameters", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: vol.GetVolumeId(),
			Parameters: e.params("fileMode", "9"), VolumeCapabilities: []*csi.VolumeCapability{readOnlyMany}},
			codes.InvalidArgument, false, "fileMode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.c.ValidateVolumeCapabilities(ctxT(t), tc.req)
			if status.Code(err) != tc.want {
				t.Fatalf("ValidateVolumeCapabilities = %v, want %v", err, tc.want)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error %v does not mention %q", err, tc.wantMsg)
				}
				return
			}
			if (resp.GetConfirmed() != nil) != tc.wantConfirmed || !strings.Contains(resp.GetMessage(), tc.wantMsg) {
				t.Errorf("ValidateVolumeCapabilities = %v, want confirmed %v, message with %q", resp, tc.wantConfirmed, tc.wantMsg)
			}
			if c := resp.GetConfirmed(); c != nil && len(c.GetVolumeCapabilities()) != len(tc.req.GetVolumeCapabilities()) {
				t.Errorf("confirmed %d capabilities, asked %d", len(c.GetVolumeCapabilities()), len(tc.req.GetVolumeCapabilities()))
			}
		})
	}
}

func TestCapabilitiesAndUnimplemented(t *testing.T) {
	e := newEnv(t, nil, controller.Config{}, "text")
	caps, err := e.c.ControllerGetCapabilities(ctxT(t), &csi.ControllerGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(caps.GetCapabilities()) != 1 || caps.GetCapabilities()[0].GetRpc().GetType() != csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME {
		t.Errorf("ControllerGetCapabilities = %v, want CREATE_DELETE_VOLUME only", caps)
	}
	for name, call := range map[string]func() error{
		"ControllerPublishVolume": func() error {
			_, err := e.c.ControllerPublishVolume(ctxT(t), &csi.ControllerPublishVolumeRequest{})
			return err
		},
		"ListVolumes": func() error { _, err := e.c.ListVolumes(ctxT(t), &csi.ListVolumesRequest{}); return err },
		"GetCapacity": func() error { _, err := e.c.GetCapacity(ctxT(t), &csi.GetCapacityRequest{}); return err },
		"CreateSnapshot": func() error {
			_, err := e.c.CreateSnapshot(ctxT(t), &csi.CreateSnapshotRequest{})
			return err
		},
		"ControllerExpandVolume": func() error {
			_, err := e.c.ControllerExpandVolume(ctxT(t), &csi.ControllerExpandVolumeRequest{})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.Unimplemented {
			t.Errorf("%s = %v, want Unimplemented", name, err)
		}
	}
	info, err := e.identity.GetPluginInfo(ctxT(t), &csi.GetPluginInfoRequest{})
	if err != nil || info.GetName() != driver.DriverName {
		t.Errorf("GetPluginInfo = %v, %v", info, err)
	}
}

// TestSecretsNotLogged runs CreateVolume and DeleteVolume with secrets, good
// and bad, through the real server with debug logging, as text and as JSON:
// no secret may appear in the log.
func TestSecretsNotLogged(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t, nil, controller.Config{}, format)
			good := e.secrets()
			bad := e.secrets()
			bad["secretAccessKey"] = "Wrong-Secret-q7Zx3vN9"
			bad["sessionToken"] = "Session-Token-k2Lm8Rt4"
			e.m.Put(t, "data", "vol-s/x", []byte("x"))

			var ids []string
			for _, secrets := range []map[string]string{good, bad} {
				for _, params := range []map[string]string{e.params("deletePolicy", "delete"), e.params()} {
					req := e.createReq("vol-s", params)
					req.Secrets = secrets
					resp, err := e.c.CreateVolume(ctxT(t), req)
					if err == nil {
						ids = append(ids, resp.GetVolume().GetVolumeId())
					}
				}
			}
			for _, id := range ids {
				for _, secrets := range []map[string]string{bad, good} {
					_, _ = e.c.DeleteVolume(ctxT(t), &csi.DeleteVolumeRequest{VolumeId: id, Secrets: secrets})
				}
			}
			if len(ids) != 2 {
				t.Fatalf("%d volumes created, want 2 (with the good secrets)", len(ids))
			}
			if got := e.keys(t); len(got) != 0 {
				t.Errorf("DeleteVolume with the good secrets left %q", got)
			}
			logs := e.logs.String()
			for _, s := range []string{good["secretAccessKey"], good["accessKeyID"], bad["secretAccessKey"], bad["sessionToken"]} {
				if strings.Contains(logs, s) {
					t.Errorf("the log contains the secret %q", s)
				}
			}
			// The calls were logged, with their requests.
			for _, want := range []string{"CreateVolume", "DeleteVolume", "Unauthenticated", "***stripped***", "volume deleted with its objects"} {
				if !strings.Contains(logs, want) {
					t.Errorf("the log lacks %q", want)
				}
			}
			if t.Failed() {
				t.Logf("log:\n%s", logs)
			}
		})
	}
}
