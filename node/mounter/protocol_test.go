package mounter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestRequestRedacts: however a request is printed or logged, the secret
// key and the token do not show.
func TestRequestRedacts(t *testing.T) {
	req := Request{Op: OpServe, VolumeID: "v", Source: &Source{Bucket: "b"},
		Credentials: &Credentials{AccessKeyID: "AKIAEXAMPLE1234", SecretAccessKey: "very-secret-key", SessionToken: "session-tok"}}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("x", "req", req, "creds", req.Credentials)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "req", req, "creds", req.Credentials)
	for _, s := range []string{
		fmt.Sprint(req), fmt.Sprintf("%+v", req), fmt.Sprintf("%#v", req), fmt.Sprintf("%v", req.Credentials),
		fmt.Sprintf("%#v", req.Credentials), logs.String(),
	} {
		if strings.Contains(s, "very-secret-key") || strings.Contains(s, "session-tok") || strings.Contains(s, "AKIAEXAMPLE") {
			t.Errorf("secret shown: %s", s)
		}
	}
	if !strings.Contains(fmt.Sprint(req), "****1234") {
		t.Errorf("access key not shown masked: %s", req)
	}
}

func TestCredentialsID(t *testing.T) {
	a := &Credentials{AccessKeyID: "a", SecretAccessKey: "b"}
	if a.ID() != (&Credentials{AccessKeyID: "a", SecretAccessKey: "b"}).ID() {
		t.Error("equal credentials, different IDs")
	}
	for _, o := range []*Credentials{
		{AccessKeyID: "a", SecretAccessKey: "c"},
		{AccessKeyID: "ab", SecretAccessKey: ""},
		{AccessKeyID: "a", SecretAccessKey: "b", SessionToken: "t"},
	} {
		if o.ID() == a.ID() {
			t.Errorf("%+v has the ID of %+v", *o, *a)
		}
	}
	if (*Credentials)(nil).ID() != "ambient" {
		t.Error("nil credentials are not ambient")
	}
}

// TestFrames: a frame reads back, and reading it leaves what follows alone.
func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	if err := writeFrame(&buf, Request{Op: OpPing}); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("next")
	var req Request
	if err := readFrame(&buf, &req); err != nil || req.Op != OpPing {
		t.Fatalf("read back %+v, %v", req, err)
	}
	if buf.String() != "next" {
		t.Errorf("readFrame consumed %q more", "next"[:4-buf.Len()])
	}
	if err := readFrame(strings.NewReader("hfd1\x00\x00\x00\x02{}"), &req); err == nil {
		t.Error("a fusefd frame read as a request")
	}
	if err := readFrame(strings.NewReader("hmr1\xff\xff\xff\xff"), &req); err == nil {
		t.Error("an oversized frame read")
	}
}

func TestViewOptions(t *testing.T) {
	d := func(v time.Duration) *time.Duration { return &v }
	uid := uint32(1000)
	for _, tc := range []struct {
		in            View
		ttl, negative time.Duration
	}{
		{View{}, 0, 0},
		{View{MetadataTTL: d(0)}, -1, -1},
		{View{MetadataTTL: d(30 * time.Second)}, 30 * time.Second, 30 * time.Second},
		{View{MetadataTTL: d(2 * time.Hour)}, 2 * time.Hour, 0},
	} {
		o := viewOptions(tc.in)
		if o.MetadataTTL != tc.ttl || o.NegativeTTL != tc.negative {
			t.Errorf("%+v: ttl %v negative %v, want %v %v", tc.in, o.MetadataTTL, o.NegativeTTL, tc.ttl, tc.negative)
		}
	}
	o := viewOptions(View{UID: &uid, FileMode: 0o440, DirMode: 0o550})
	if o.UID != 1000 || o.GID != 0 || o.FileMode != 0o440 || o.DirMode != 0o550 {
		t.Errorf("options %+v", o)
	}
}

// FuzzReadFrame: no bytes on the mounter's socket make readFrame panic or
// take more than one frame's worth of memory, and a request it reads is
// written back as a frame that reads back the same; checkServe judges it
// without panicking.
func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	ttl := time.Minute
	uid := uint32(1000)
	for _, req := range []Request{
		{Op: OpPing},
		{Op: OpDrop, VolumeID: "v"},
		{Op: OpServe, VolumeID: "h2/pd/x", StagingPath: "/var/lib/kubelet/plugins/s", Device: "0:40",
			Source:      &Source{Endpoint: "minio:9000", Bucket: "data", Prefix: "a/", PathStyle: true, Insecure: true},
			View:        View{UID: &uid, FileMode: 0o444, MetadataTTL: &ttl},
			Credentials: &Credentials{AccessKeyID: "AK", SecretAccessKey: "SK"}, CacheCluster: "default"},
	} {
		buf.Reset()
		if err := writeFrame(&buf, req); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte("hmr1\x00\x00\x00\x02{}"))
	f.Add([]byte("hmr1\xff\xff\xff\xff"))
	f.Add([]byte("hfd1\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req Request
		r := bytes.NewReader(b)
		if err := readFrame(r, &req); err != nil {
			return
		}
		if read := len(b) - r.Len(); read > 8+maxFrame {
			t.Fatalf("read %d bytes for one frame", read)
		}
		_ = checkServe(req)
		_ = req.String()
		var out bytes.Buffer
		if err := writeFrame(&out, req); err != nil {
			t.Fatalf("a request read from a frame does not write back: %v", err)
		}
		var again Request
		if err := readFrame(&out, &again); err != nil {
			t.Fatalf("written back, it does not read: %v", err)
		}
		if !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip changed the request: %+v, then %+v", req, again)
		}
	})
}

// TestNamesOfBothReleases: requests and sessions are written with the
// camelCase names and the snake_case ones of hmr1's first release, and read
// from either: a mounter and a plugin of either release understand each
// other across an upgrade.
func TestNamesOfBothReleases(t *testing.T) {
	var buf bytes.Buffer
	if err := writeFrame(&buf, Request{Op: OpDrop, VolumeID: "v1", StagingPath: "/s"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"volumeID":"v1"`, `"volume_id":"v1"`, `"stagingPath":"/s"`, `"staging_path":"/s"`} {
		if !strings.Contains(buf.String(), name) {
			t.Errorf("request frame %q lacks %s", buf.String()[8:], name)
		}
	}
	// As an older plugin writes it.
	old := `{"op":"drop","volume_id":"v2","staging_path":"/old"}`
	var req Request
	if err := readFrame(strings.NewReader("hmr1\x00\x00\x00"+string(rune(len(old)))+old), &req); err != nil ||
		req.VolumeID != "v2" || req.StagingPath != "/old" {
		t.Errorf("request of the older release read as %+v, %v", req, err)
	}
	// A list answer of an older mounter.
	var resp Response
	if err := json.Unmarshal([]byte(`{"ok":true,"sessions":[{"id":1,"volume_id":"v3","staging_path":"/st","device":"0:40"}]}`), &resp); err != nil ||
		len(resp.Sessions) != 1 || resp.Sessions[0].VolumeID != "v3" || resp.Sessions[0].StagingPath != "/st" {
		t.Errorf("session of the older release read as %+v, %v", resp.Sessions, err)
	}
	b, err := json.Marshal(SessionInfo{ID: 1, VolumeID: "v4", StagingPath: "/p"})
	if err != nil || !strings.Contains(string(b), `"volume_id":"v4"`) || !strings.Contains(string(b), `"volumeID":"v4"`) {
		t.Errorf("session written as %s, %v", b, err)
	}
}

// TestListingScope: listings kept on disk are shared only by volumes of
// the same endpoint and credentials, and the scope shows no secret.
func TestListingScope(t *testing.T) {
	src := &Source{Endpoint: "minio:9000", Bucket: "b"}
	a := &Credentials{AccessKeyID: "AKIAEXAMPLE1234", SecretAccessKey: "very-secret-key", SessionToken: "t1"}
	same := &Credentials{AccessKeyID: "AKIAEXAMPLE1234", SecretAccessKey: "very-secret-key", SessionToken: "t2"}
	scope := listingScope(src, a)
	if got := listingScope(&Source{Endpoint: "minio:9000", Bucket: "other", Prefix: "p/"}, same); got != scope {
		t.Errorf("same endpoint and keys (another token, bucket): scope %s, want %s", got, scope)
	}
	for name, other := range map[string]string{
		"another secret":   listingScope(src, &Credentials{AccessKeyID: a.AccessKeyID, SecretAccessKey: "other"}),
		"another key":      listingScope(src, &Credentials{AccessKeyID: "AKIAOTHER", SecretAccessKey: a.SecretAccessKey}),
		"ambient":          listingScope(src, nil),
		"another endpoint": listingScope(&Source{Endpoint: "s3.example:443", Bucket: "b"}, a),
		"shifted fields":   listingScope(src, &Credentials{AccessKeyID: "AKIAEXAMPLE1234very", SecretAccessKey: "-secret-key"}),
	} {
		if other == scope {
			t.Errorf("%s: same scope %s", name, other)
		}
	}
	if strings.Contains(scope, "secret") || strings.Contains(scope, "AKIA") || len(scope) != 64 {
		t.Errorf("scope %q: want a full SHA-256 in hex, nothing of the keys", scope)
	}
}

// TestListingDirDefault: the mounter keeps listings in its cache dir unless
// told not to.
func TestListingDirDefault(t *testing.T) {
	for _, c := range []struct{ cacheDir, listingDir, want string }{
		{"/var/lib/hoard/cache", "", "/var/lib/hoard/cache/listings"},
		{"/var/lib/hoard/cache", "/x", "/x"},
		{"/var/lib/hoard/cache", "-", ""},
		{"", "", ""},
	} {
		if got := (Config{CacheDir: c.cacheDir, ListingDir: c.listingDir}).withDefaults().ListingDir; got != c.want {
			t.Errorf("CacheDir %q ListingDir %q: got %q, want %q", c.cacheDir, c.listingDir, got, c.want)
		}
	}
}
