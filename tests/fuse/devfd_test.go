package fuse_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hoard.dev/hoard/fusefd"
	"hoard.dev/hoard/tests/testenv"
)

// The parent process of TestHoardServesPassedFd: it mounts /dev/fuse on a
// directory, starts `hoard mount SOURCE /dev/fd/3` with the descriptor, prints
// hoard's pid and exits, as a privileged CSI node plugin would.
func init() {
	if os.Getenv("HOARD_TEST_FD_PARENT") == "" {
		return
	}
	args := strings.Split(os.Getenv("HOARD_TEST_FD_PARENT"), "\t") // log, target, hoard, source, flags...
	logFile, err := os.Create(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "parent:", err)
		os.Exit(2)
	}
	args = args[1:]
	f, err := fusefd.Mount(args[0], fusefd.Options{FsName: "hoard:" + args[2], ReadOnly: true, AllowOther: true,
		DefaultPermissions: true, MaxRead: 1 << 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, "parent: mount:", err)
		os.Exit(2)
	}
	cmd := exec.Command(args[1], append([]string{"mount", args[2], "/dev/fd/3"}, args[3:]...)...)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout, cmd.Stderr = logFile, logFile // not our pipes: they must close when we exit
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "parent: start hoard:", err)
		os.Exit(2)
	}
	f.Close() // the server holds the only copy now
	fmt.Println(cmd.Process.Pid)
	os.Exit(0)
}

// TestHoardServesPassedFd: a parent opens /dev/fuse and mounts it, hands the
// descriptor to `hoard mount` serving /dev/fd/3, and exits; the mount stays
// and reads are byte-exact.
func TestHoardServesPassedFd(t *testing.T) {
	e := newEnv(t)
	want := testenv.RandomBytes(5<<20+123, 9)
	e.put(t, "dir/blob.bin", want)
	target := t.TempDir()
	hoard := testenv.HoardBinary(t)
	logPath := filepath.Join(t.TempDir(), "hoard.log")

	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(),
		"HOARD_TEST_FD_PARENT="+strings.Join([]string{logPath, target, hoard, "s3://" + e.bucket,
			"--s3-endpoint", e.proxy.Endpoint(), "--s3-insecure", "--s3-path-style", "--s3-region", "us-east-1",
			"--cache-dir", t.TempDir(), "--log-level", "warn"}, "\t"),
		"AWS_ACCESS_KEY_ID="+e.minio.AccessKey(), "AWS_SECRET_ACCESS_KEY="+e.minio.SecretKey())
	var stderr bytes.Buffer
	parent.Stderr = &stderr
	out, err := parent.Output()
	if err != nil {
		t.Fatalf("parent: %v\n%s", err, stderr.String())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("parent printed %q", out)
	}
	t.Cleanup(func() {
		fusefd.Unmount(target, true)
		syscall.Kill(pid, syscall.SIGKILL)
	})
	// The parent has exited (Output waited for it); the mount must answer.
	var got []byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err = os.ReadFile(filepath.Join(target, "dir", "blob.bin"))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		logs, _ := os.ReadFile(logPath)
		t.Fatalf("read through the mount after the parent exited: %v\n%s\n%s", err, stderr.String(), logs)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes through the passed descriptor differ from the bucket's")
	}
	if state, err := fusefd.Check(target); err != nil || state != fusefd.Healthy {
		t.Fatalf("mount state %v, %v; want healthy", state, err)
	}
	// Unmounting ends the server.
	if err := fusefd.Unmount(target, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for syscall.Kill(pid, 0) == nil && ctx.Err() == nil {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(b), ") Z ") || len(b) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Error("hoard kept running after its mount was unmounted")
	}
}
