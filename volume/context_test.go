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
