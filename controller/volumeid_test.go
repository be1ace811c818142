package controller

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/volume"
)

func mustParams(t *testing.T, kv ...string) params {
	t.Helper()
	m := map[string]string{"bucket": "data"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	p, err := parseParams(m)
	if err != nil {
		t.Fatalf("parseParams(%v): %v", m, err)
	}
	return p
}

// keys are the volume ID keys of this file's tests.
func keys(t *testing.T) *volume.IDKeys {
	t.Helper()
	k, err := volume.ParseIDKeys([]byte("0123456789abcdef0123456789abcdef-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVolumeIDRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		kv   []string
		want volume.ID
	}{
		{[]string{"deletePolicy", "delete"},
			volume.ID{Provisioning: ProvisionPrefix, DeleteData: true, Bucket: "data", Prefix: "vol/"}},
		{[]string{"deletePolicy", "delete", "endpoint", "http://minio.minio.svc:9000", "pathStyle", "true", "region", "eu-1", "prefix", "a/b"},
			volume.ID{Provisioning: ProvisionPrefix, DeleteData: true, Endpoint: "minio.minio.svc:9000", Insecure: true, PathStyle: true,
				Region: "eu-1", Bucket: "data", Prefix: "a/b/vol/"}},
		{[]string{"deletePolicy", "delete", "endpoint", "[::1]:9000", "insecure", "true"},
			volume.ID{Provisioning: ProvisionPrefix, DeleteData: true, Endpoint: "[::1]:9000", Insecure: true, Bucket: "data", Prefix: "vol/"}},
		{[]string{"deletePolicy", "delete", "pathStyle", "true"},
			volume.ID{Provisioning: ProvisionPrefix, DeleteData: true, PathStyle: true, Bucket: "data", Prefix: "vol/"}},
		{nil, volume.ID{Provisioning: ProvisionPrefix}},
		{[]string{"provisioning", "bucket", "prefix", "x"}, volume.ID{Provisioning: ProvisionBucket}},
	} {
		p := mustParams(t, tc.kv...)
		_, id, err := placeVolume("vol", p, keys(t))
		if err != nil {
			t.Fatalf("placeVolume(%v): %v", tc.kv, err)
		}
		got, err := volume.ParseID(id, keys(t))
		if err != nil || got != tc.want {
			t.Errorf("ParseID(%q) = %+v, %v; want %+v", id, got, err, tc.want)
		}
		if _, again, _ := placeVolume("vol", p, keys(t)); again != id {
			t.Errorf("placeVolume is not deterministic: %q, %q", id, again)
		}
	}
	// Without a key, only volumes whose deletion deletes nothing.
	if _, _, err := placeVolume("vol", mustParams(t, "deletePolicy", "delete"), nil); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "volume-id-key-file") {
		t.Errorf("deletePolicy=delete without a key: %v, want FailedPrecondition naming --volume-id-key-file", err)
	}
	if _, _, err := placeVolume("vol", mustParams(t), nil); err != nil {
		t.Errorf("retain without a key: %v", err)
	}
}

func TestVolumeIDLength(t *testing.T) {
	// A Kubernetes volume name: pvc-<UID>, 40 bytes.
	const name = "pvc-0123abcd-4567-89ef-0123-456789abcdef"
	// "h2/pd/" + 16 + "/" + "//data/" + prefix + "/" + segment = 31 + len(prefix) + len(segment)
	for _, tc := range []struct {
		name       string
		kv         []string
		wantPrefix string // "" means InvalidArgument
	}{
		{"short", []string{"prefix", "team"}, "team/" + name + "/"},
		{"exactly 128 bytes", []string{"prefix", strings.Repeat("p", 128-31-40)}, strings.Repeat("p", 128-31-40) + "/" + name + "/"},
		{"one byte more: compact prefix", []string{"prefix", strings.Repeat("p", 128-31-39)},
			strings.Repeat("p", 128-31-39) + "/" + compactSegment(name) + "/"},
		{"long namespace: compact prefix", []string{"prefix", strings.Repeat("d", 30), ParamPVCNamespace, strings.Repeat("n", 63), ParamPVCName, "claim"},
			strings.Repeat("d", 30) + "/" + compactSegment(name) + "/"},
		{"compact prefix fits exactly", []string{"prefix", strings.Repeat("p", 128-31-16)}, strings.Repeat("p", 128-31-16) + "/" + compactSegment(name) + "/"},
		{"even the compact prefix is too long", []string{"prefix", strings.Repeat("p", 128-31-15)}, ""},
	} {
		vc, id, err := placeVolume(name, mustParams(t, append([]string{"deletePolicy", "delete"}, tc.kv...)...), keys(t))
		if tc.wantPrefix == "" {
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"deletePolicy"`) || !strings.Contains(err.Error(), "129 bytes") {
				t.Errorf("%s: %v, want InvalidArgument naming deletePolicy and the size", tc.name, err)
			}
			continue
		}
		if err != nil || vc.Prefix != tc.wantPrefix || len(id) > volume.MaxIDLen {
			t.Errorf("%s: prefix %q, ID %q (%d bytes), %v; want prefix %q", tc.name, vc.Prefix, id, len(id), err, tc.wantPrefix)
		}
		if v, err := volume.ParseID(id, keys(t)); err != nil || v.Prefix != vc.Prefix {
			t.Errorf("%s: ParseID(%q) = %+v, %v", tc.name, id, v, err)
		}
	}
	// Without deletion the ID is a digest, whatever the prefix.
	vc, id, err := placeVolume(strings.Repeat("n", 128), mustParams(t, "prefix", strings.Repeat("p/", 250)), nil)
	if err != nil || len(id) != 38 || !strings.HasSuffix(vc.Prefix, "-"+shortHash(strings.Repeat("n", 128))+"/") {
		t.Errorf("retain volume: %q, %q, %v; want a 38-byte ID and the readable prefix", vc.Prefix, id, err)
	}
}

func TestVolumePrefix(t *testing.T) {
	h := shortHash("pvc-1")
	for _, tc := range []struct {
		name string
		kv   []string
		want string
	}{
		{"pvc-1", nil, "pvc-1/"},
		{"pvc-1", []string{"prefix", "team/"}, "team/pvc-1/"},
		{"pvc-1", []string{"prefix", "team", ParamPVCNamespace, "ns", ParamPVCName, "claim"}, "team/ns/claim-" + h + "/"},
		{"pvc-1", []string{ParamPVCNamespace, "ns", ParamPVCName, strings.Repeat("c", 39) + ".d-more"}, "ns/" + strings.Repeat("c", 39) + "-" + h + "/"},
		{"pvc-1", []string{"provisioning", "bucket"}, ""},
		{"pvc-1", []string{"provisioning", "bucket", "prefix", "a/b", ParamPVCNamespace, "ns", ParamPVCName, "claim"}, "a/b/"},
		{"../x y", nil, "x_y-" + shortHash("../x y") + "/"},
		{"..", nil, "volume-" + shortHash("..") + "/"},
		{"é", nil, "volume-" + shortHash("é") + "/"},
		{strings.Repeat("n", 40), nil, strings.Repeat("n", 40) + "/"},
		{strings.Repeat("n", 41), nil, strings.Repeat("n", 40) + "-" + shortHash(strings.Repeat("n", 41)) + "/"},
	} {
		if got := volumePrefix(tc.name, mustParams(t, tc.kv...)); got != tc.want {
			t.Errorf("volumePrefix(%q, %v) = %q, want %q", tc.name, tc.kv, got, tc.want)
		}
		if got := volumePrefix(tc.name, mustParams(t, tc.kv...)); got != "" {
			if _, err := volume.ParsePrefix("prefix", got); err != nil {
				t.Errorf("volumePrefix(%q) = %q is not a valid prefix: %v", tc.name, got, err)
			}
		}
	}
}

func TestWithCredentials(t *testing.T) {
	cfg, err := withCredentials(ufs.S3Config{Endpoint: "e"}, nil)
	if err != nil || cfg.AccessKey != "" {
		t.Errorf("no secrets: %v, %v; want the ambient chain (no keys)", cfg, err)
	}
	cfg, err = withCredentials(ufs.S3Config{}, map[string]string{"accessKeyID": "AK", "secretAccessKey": "SK", "sessionToken": "ST", "other": "x"})
	if err != nil || cfg.AccessKey != "AK" || cfg.SecretKey != "SK" || cfg.SessionToken != "ST" {
		t.Errorf("secrets: %v, %v", cfg, err)
	}
	_, err = withCredentials(ufs.S3Config{}, map[string]string{"accessKeyId": "AK-value", "secretAccessKey": "SK-value"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "accessKeyId") ||
		strings.Contains(err.Error(), "AK-value") || strings.Contains(err.Error(), "SK-value") {
		t.Errorf("misspelt key: %v; want InvalidArgument listing key names only", err)
	}
}
