package csi_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/node/mounter"
	"hoard.dev/hoard/tests/testenv"
)

// TestEmbeddedMounterTenants rebuilds finding 6 of issue 11 in the
// mounter's embedded cache (no --etcd: one in-process worker and one page
// store for every volume of the node), with real MinIO credentials limited
// by IAM policies: tenant A may read the whole bucket, tenant B may list it
// but read only b/. A reads a/x.bin through its volume (the embedded store
// caches it); B's volume is staged next (its bucket registered last, whose
// handle the worker used to read every volume's misses with) and reads
// a/x.bin, which it may list (key, ETag and size are all the cache asked
// for): refused, not a byte of it. B still reads b/, and A's next miss
// is fetched through the cache with A's credentials, not bypassed.
func TestEmbeddedMounterTenants(t *testing.T) {
	e := newEnv(t, envOptions{})
	x := testenv.RandomBytes(3*MiB+77, 11)
	z := testenv.RandomBytes(MiB+5, 12)
	y := testenv.RandomBytes(200<<10, 13)
	e.minio.Put(t, e.bucket, "a/x.bin", x)
	e.minio.Put(t, e.bucket, "a/z.bin", z)
	e.minio.Put(t, e.bucket, "b/y.bin", y)
	arn := "arn:aws:s3:::" + e.bucket
	credsA := e.minio.AssumeRole(t, `{"Version":"2012-10-17","Statement":[`+
		`{"Effect":"Allow","Action":["s3:ListBucket","s3:GetBucketLocation"],"Resource":["`+arn+`"]},`+
		`{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["`+arn+`/*"]}]}`)
	credsB := e.minio.AssumeRole(t, `{"Version":"2012-10-17","Statement":[`+
		`{"Effect":"Allow","Action":["s3:ListBucket","s3:GetBucketLocation"],"Resource":["`+arn+`"]},`+
		`{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["`+arn+`/b/*"]}]}`)
	t.Cleanup(func() { e.checkNoSecrets(credsA.SecretKey, credsA.SessionToken, credsB.SecretKey, credsB.SessionToken) })

	sa, sb := filepath.Join(e.root, "staging", "a"), filepath.Join(e.root, "staging", "b")
	stage := func(id, staging string, creds ufs.Credentials) {
		t.Helper()
		secrets := map[string]string{"accessKeyID": creds.AccessKey, "secretAccessKey": creds.SecretKey, "sessionToken": creds.SessionToken}
		if err := e.stage(id, staging, e.volumeContext(""), secrets); err != nil {
			t.Fatalf("NodeStageVolume %s: %v", id, err)
		}
	}
	stage("vol-a", sa, credsA)
	expectContent(t, filepath.Join(sa, "a/x.bin"), x)
	stage("vol-b", sb, credsB)

	// B may list a/: the listing gives x's key, ETag and size, and the
	// lookup needs no HEAD that B's credentials would fail.
	ents, err := os.ReadDir(filepath.Join(sb, "a"))
	if err != nil || len(ents) != 2 {
		t.Fatalf("tenant B lists a/: %v, %v; want x.bin and z.bin", ents, err)
	}
	got, err := readFile(filepath.Join(sb, "a/x.bin"))
	if err == nil || len(got) != 0 {
		t.Errorf("tenant B read tenant A's cached a/x.bin: %d bytes, error %v; want none and EACCES or EIO", len(got), err)
	} else if !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EIO) {
		t.Errorf("tenant B's read of a/x.bin: %v, want EACCES or EIO", err)
	}
	expectContent(t, filepath.Join(sb, "b/y.bin"), y)
	expectContent(t, filepath.Join(sa, "a/z.bin"), z)

	l := e.list()
	if len(l.Backends) != 2 {
		t.Fatalf("backends %+v, want one per tenant", l.Backends)
	}
	var a *mounter.Traffic
	for _, s := range l.Sessions {
		if s.VolumeID == "vol-a" {
			a = s.Traffic
		}
	}
	if a == nil {
		t.Fatalf("no traffic of vol-a in %+v", l.Sessions)
	}
	if a.BypassedBytes != 0 || a.ReadBytes["bucket"] != 0 {
		t.Errorf("tenant A read %d bytes past the cache (cause %q), want its misses fetched through the worker with its own credentials",
			a.BypassedBytes, a.BypassCause)
	}
	if n := a.ReadBytes["worker"] + a.ReadBytes["memory"]; n != int64(len(x)+len(z)) {
		t.Errorf("tenant A read %d bytes through the cache (%v), want %d", n, a.ReadBytes, len(x)+len(z))
	}
}
