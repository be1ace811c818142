package ufs_test

import (
	"context"
	"strings"
	"testing"

	"hoard.dev/hoard/cachecore/ufs"
)

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		uri     string
		want    ufs.Location
		wantErr string // part of the error message; "" means no error
	}{
		{uri: "s3://bucket", want: ufs.Location{Scheme: "s3", Bucket: "bucket"}},
		{uri: "s3://bucket/", want: ufs.Location{Scheme: "s3", Bucket: "bucket"}},
		{uri: "s3://my-bucket.v2/some/prefix/", want: ufs.Location{Scheme: "s3", Bucket: "my-bucket.v2", Prefix: "some/prefix/"}},
		{uri: "s3://bucket/some/prefix", want: ufs.Location{Scheme: "s3", Bucket: "bucket", Prefix: "some/prefix/"}},
		{uri: "S3://bucket/a%20b/", want: ufs.Location{Scheme: "s3", Bucket: "bucket", Prefix: "a b/"}},
		{uri: "file:///abs/path", want: ufs.Location{Scheme: "file", Bucket: "/abs/path"}},
		{uri: "file:///abs/path/../dir/", want: ufs.Location{Scheme: "file", Bucket: "/abs/dir"}},
		{uri: "file://localhost/abs", want: ufs.Location{Scheme: "file", Bucket: "/abs"}},
		{uri: "file:///", want: ufs.Location{Scheme: "file", Bucket: "/"}},

		{uri: "s3://", wantErr: "missing bucket"},
		{uri: "s3:///prefix/", wantErr: "missing bucket"},
		{uri: "s3:bucket", wantErr: "missing bucket"},
		{uri: "s3://b", wantErr: "bucket"},
		{uri: "s3://bucket:9000/x", wantErr: "bucket"},
		{uri: "s3://bucket//x/", wantErr: "empty"},
		{uri: "s3://bucket/a/../b/", wantErr: `".."`},
		{uri: "s3://bucket/x?versionId=1", wantErr: "query"},
		{uri: "s3://AKIAEXAMPLE:s3cr3t@bucket/", wantErr: "credentials"},
		{uri: "file://relative/dir", wantErr: "absolute path"},
		{uri: "file:relative", wantErr: "absolute path"},
		{uri: "file://", wantErr: "absolute path"},
		{uri: "gs://bucket", wantErr: `unsupported scheme "gs"`},
		{uri: "bucket/prefix", wantErr: "missing scheme"},
		{uri: "/abs/path", wantErr: "missing scheme"},
		{uri: "", wantErr: "missing scheme"},
		{uri: "s3://user:s3cr3t@bu cket", wantErr: "not a URI"},
	} {
		got, err := ufs.ParseSource(tc.uri)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("ParseSource(%q): %v", tc.uri, err)
		case tc.wantErr == "" && got != tc.want:
			t.Errorf("ParseSource(%q) = %+v, want %+v", tc.uri, got, tc.want)
		case tc.wantErr != "" && err == nil:
			t.Errorf("ParseSource(%q) = %+v, want an error with %q", tc.uri, got, tc.wantErr)
		case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
			t.Errorf("ParseSource(%q): %v, want an error with %q", tc.uri, err, tc.wantErr)
		}
		if err != nil && tc.wantErr != "" && !strings.Contains(err.Error(), "want") && !strings.Contains(err.Error(), "credentials") &&
			!strings.Contains(err.Error(), "bucket") && !strings.Contains(err.Error(), "segment") {
			t.Errorf("ParseSource(%q): %v does not say what is expected", tc.uri, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("ParseSource(%q): error %q repeats the password", tc.uri, err)
		}
		if err == nil {
			again, err := ufs.ParseSource(got.String())
			if err != nil || again != got {
				t.Errorf("ParseSource(%q).String() = %q does not parse back: %+v, %v", tc.uri, got.String(), again, err)
			}
		}
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	loc, err := ufs.ParseSource("file://" + dir)
	if err != nil {
		t.Fatal(err)
	}
	u, err := ufs.Open(context.Background(), loc, ufs.S3Config{})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := u.(*ufs.Local); !ok || u.Source().String() != "file://"+dir {
		t.Errorf("Open(%v) = %T %s, want *ufs.Local for %s", loc, u, u.Source(), dir)
	} else {
		l.Close()
	}
	u, err = ufs.Open(context.Background(), ufs.Location{Scheme: "s3", Bucket: "bucket", Prefix: "p/"},
		ufs.S3Config{Endpoint: "127.0.0.1:9", Insecure: true, AccessKey: "a", SecretKey: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := u.(*ufs.S3); !ok || u.Source().String() != "s3+http://127.0.0.1:9/bucket" {
		t.Errorf("Open(s3) = %T %s, want *ufs.S3 s3+http://127.0.0.1:9/bucket", u, u.Source())
	}
	if _, err := ufs.Open(context.Background(), ufs.Location{Scheme: "gs", Bucket: "b"}, ufs.S3Config{}); err == nil {
		t.Error("Open of scheme gs: no error")
	}
}
