package volume_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/volume"
)

func TestVolumeContextRoundTrip(t *testing.T) {
	uid, gid, ttl := uint32(1000), uint32(0), 0*time.Second
	for _, v := range []volume.Context{
		{Bucket: "data"},
		{Bucket: "data", Prefix: "a/b/", Endpoint: "minio.minio.svc:9000", Region: "us-east-1", PathStyle: true, Insecure: true,
			UID: &uid, GID: &gid, FileMode: 0o440, DirMode: 0o550, MetadataTTL: &ttl, CacheCluster: "default"},
		{Bucket: "data", Endpoint: "[::1]:9000"},
	} {
		m := v.Map()
		got, err := volume.ParseContext(m)
		if err != nil {
			t.Errorf("ParseVolumeContext(%v): %v", m, err)
			continue
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("round trip of %+v through %v gave %+v", v, m, got)
		}
	}
}

func TestParseVolumeContext(t *testing.T) {
	got, err := volume.ParseContext(map[string]string{
		"bucket": "data", "prefix": "a/b", "endpoint": "http://minio:9000", "fileMode": "0o444",
		// Kubernetes' own keys are ignored.
		"csi.storage.k8s.io/pod.name": "p", "storage.kubernetes.io/csiProvisionerIdentity": "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := volume.Context{Bucket: "data", Prefix: "a/b/", Endpoint: "minio:9000", Insecure: true, FileMode: 0o444}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if loc := got.Location(); loc != (ufs.Location{Scheme: "s3", Bucket: "data", Prefix: "a/b/"}) {
		t.Errorf("Location() = %v", loc)
	}
	if cfg := got.S3Config(); cfg.Endpoint != "minio:9000" || !cfg.Insecure || cfg.AccessKey != "" {
		t.Errorf("S3Config() = %v", cfg)
	}

	for _, tc := range []struct {
		m       map[string]string
		wantKey string
	}{
		{map[string]string{}, "bucket"},
		{map[string]string{"bucket": "data", "Bucket": "x"}, "Bucket"},
		{map[string]string{"bucket": "data", "accessKeyID": "x"}, "accessKeyID"},
		{map[string]string{"bucket": "data", "endpoint": "https://minio:9000", "insecure": "true"}, "insecure"},
		{map[string]string{"bucket": "data", "endpoint": "http://user:pw@minio:9000"}, "endpoint"},
	} {
		_, err := volume.ParseContext(tc.m)
		var pe *volume.ParamError
		if !errors.As(err, &pe) || pe.Key != tc.wantKey || !strings.Contains(err.Error(), `"`+tc.wantKey+`"`) {
			t.Errorf("ParseVolumeContext(%v) = %v, want a ParamError naming %q", tc.m, err, tc.wantKey)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("the error repeats a password: %v", err)
		}
	}
}

// FuzzParseContext: no volume context makes ParseContext panic, and one it
// accepts comes back unchanged through Map (the form the controller writes
// and the node reads), with a prefix that is a real one.
func FuzzParseContext(f *testing.F) {
	f.Add("data", "a/b", "http://minio.minio.svc:9000", "us-east-1", "true", "0444", "10m", "csi.storage.k8s.io/pod.name", "p")
	f.Add("data", "", "[::1]:9000", "", "false", "0o555", "0s", "uid", "1000")
	f.Add("Not_A_Bucket!", "/x", "h:0", "re gion", "yes", "999", "-1s", "unknown", "v")
	f.Fuzz(func(t *testing.T, bucket, prefix, endpoint, region, pathStyle, mode, ttl, extraKey, extraVal string) {
		m := map[string]string{volume.KeyBucket: bucket, volume.KeyPrefix: prefix, volume.KeyEndpoint: endpoint,
			volume.KeyRegion: region, volume.KeyPathStyle: pathStyle, volume.KeyFileMode: mode, volume.KeyMetadataTTL: ttl}
		for k, v := range m {
			if v == "" {
				delete(m, k)
			}
		}
		m[extraKey] = extraVal
		v, err := volume.ParseContext(m)
		if err != nil {
			var pe *volume.ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseContext(%v): %v is not a ParamError", m, err)
			}
			return
		}
		if v.Prefix != "" && (!strings.HasSuffix(v.Prefix, "/") || strings.HasPrefix(v.Prefix, "/") || strings.Contains(v.Prefix, "//")) {
			t.Fatalf("ParseContext(%v) gave prefix %q", m, v.Prefix)
		}
		back, err := volume.ParseContext(v.Map())
		if err != nil || !reflect.DeepEqual(back, v) {
			t.Fatalf("ParseContext(%v) = %+v; through Map %v it reads back as %+v, %v", m, v, v.Map(), back, err)
		}
	})
}
