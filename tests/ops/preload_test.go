package ops_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hoard.dev/hoard/tests/testenv"
)

// hoard runs the hoard binary with the cluster's S3 flags and credentials
// and returns its combined output and exit code.
func (c *cluster) hoard(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.HoardBinary(t), append(args, c.s3...)...)
	cmd.Env = append(os.Environ(), c.s3env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("hoard %v: %v\n%s", args, err, out)
	return "", -1
}

// TestPreload: hoard load warms a prefix through the cluster; a load that
// covered only part of it (an interrupted Job) is resumed by running it
// again, which fetches only the rest; hoard load --check reports the
// cached fraction and, with --wait, holds until the prefix is warm (an
// init container); a load whose objects fail exits non-zero.
func TestPreload(t *testing.T) {
	c := startCluster(t)
	const files, size = 16, 3 * MiB / 2
	want := map[string][]byte{}
	for i := range files {
		half := "a"
		if i >= files/2 {
			half = "b"
		}
		key := fmt.Sprintf("ds2/%s/f%02d.bin", half, i)
		want[key] = c.minio.PutRandom(t, c.bucket, key, size, uint64(100+i))
	}
	etcd := append([]string{"--etcd", c.etcd}, testenv.ClientTLSArgs(t)...)
	src := "s3://" + c.bucket + "/ds2/"

	out, code := c.hoard(t, append([]string{"load", "--check", src}, etcd...)...)
	if code == 0 || !strings.Contains(out, "0.0% cached") || !strings.Contains(out, "0 of 16 files whole") {
		t.Fatalf("check of a cold prefix: exit %d\n%s", code, out)
	}

	// Half the dataset, as an interrupted load leaves it.
	if out, code := c.hoard(t, append([]string{"load", "s3://" + c.bucket + "/ds2/a/"}, etcd...)...); code != 0 {
		t.Fatalf("load of ds2/a/: exit %d\n%s", code, out)
	}
	out, code = c.hoard(t, append([]string{"load", "--check", src}, etcd...)...)
	if code == 0 || !strings.Contains(out, "50.0% cached") || !strings.Contains(out, "8 of 16 files whole") {
		t.Fatalf("check of a half-warm prefix: exit %d\n%s", code, out)
	}

	// An init container waiting for the dataset.
	args := append([]string{"load", "--check", "--wait", "--interval", "200ms", "--timeout", "90s", src}, etcd...)
	waiter := exec.Command(testenv.HoardBinary(t), append(args, c.s3...)...)
	waiter.Env = append(os.Environ(), c.s3env...)
	var waitOut bytes.Buffer
	waiter.Stdout, waiter.Stderr = &waitOut, &waitOut
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- waiter.Wait() }()
	t.Cleanup(func() { waiter.Process.Kill() })
	select {
	case err := <-waited:
		t.Fatalf("--wait returned before the prefix was warm: %v\n%s", err, waitOut.String())
	case <-time.After(time.Second):
	}

	// Resume: the whole prefix; only the other half is fetched.
	getsBefore := c.proxy.TotalGETs()
	out, code = c.hoard(t, append([]string{"load", src}, etcd...)...)
	if code != 0 || !strings.Contains(out, "loaded 16 of 16 files") {
		t.Fatalf("resumed load: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "fetched 12 MiB from the bucket, 12 MiB were cached already; 0 failed") {
		t.Errorf("the resumed load does not say it fetched only the missing half:\n%s", out)
	}
	if !strings.Contains(out, "load: ") {
		t.Errorf("no progress line in the load's log:\n%s", out)
	}
	for key := range want {
		if n := c.proxy.GETs(key); n != 1 {
			t.Errorf("%s fetched %d times over the two loads, want once", key, n)
		}
	}
	t.Logf("resumed load: %d GETs for the missing half\n%s", c.proxy.TotalGETs()-getsBefore, out)
	select {
	case err := <-waited:
		if err != nil || !strings.Contains(waitOut.String(), "100.0% cached") {
			t.Errorf("--wait after the load: %v\n%s", err, waitOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("--wait still waiting after the prefix was warm:\n%s", waitOut.String())
	}

	// Objects that fail: a cache cluster whose worker cannot read the bucket
	// (its operator allowed another endpoint only).
	testenv.StartWorkerProc(t, testenv.WorkerOptions{ID: "w-nocreds", Etcd: []string{c.etcd}, Cluster: "nocreds",
		Allow: []string{"s3+https://elsewhere.invalid/*"}})
	out, code = c.hoard(t, append([]string{"load", "--etcd", c.etcd, "--cluster", "nocreds", "--max-errors", "3", src}, testenv.ClientTLSArgs(t)...)...)
	if code == 0 || !strings.Contains(out, "failed") || !strings.Contains(out, "access denied") {
		t.Errorf("load through workers that cannot read the bucket: exit %d\n%s", code, out)
	}
}

// TestWarmedReadNoGETs: a dataset hoard load warmed is read through a
// mount with no GET to the bucket.
func TestWarmedReadNoGETs(t *testing.T) {
	testenv.RequireFUSE(t)
	c := startCluster(t)
	want := map[string][]byte{}
	for i := range 6 {
		key := fmt.Sprintf("warm/f%d.bin", i)
		want[key] = c.minio.PutRandom(t, c.bucket, key, int64(i+1)*MiB+12345, uint64(200+i))
	}
	if out, code := c.hoard(t, append([]string{"load", "--etcd", c.etcd, "s3://" + c.bucket + "/warm/"}, testenv.ClientTLSArgs(t)...)...); code != 0 {
		t.Fatalf("load: exit %d\n%s", code, out)
	}
	mnt, _ := c.mount(t, "warm/", testenv.FreeAddr(t))
	gets := c.proxy.TotalGETs()
	for key, data := range want {
		got, err := os.ReadFile(filepath.Join(mnt, strings.TrimPrefix(key, "warm/")))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %s through the mount: %d bytes, %v", key, len(got), err)
		}
	}
	if n := c.proxy.TotalGETs() - gets; n != 0 {
		t.Errorf("reading the preloaded dataset made %d GETs to the bucket, want 0", n)
	}
}
