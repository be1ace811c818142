package csi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"hoard.dev/hoard/tests/testenv"
)

// container is a process in a mount namespace of its own that sees a
// volume's target through a bind mount, the way a container runtime gives a
// pod its volume: rslave for mountPropagation HostToContainer, rprivate for
// None (the default).
type container struct {
	pid  int
	path string // the volume inside the namespace
}

// startContainer binds target on dir inside a new mount namespace whose
// mounts are slaves of the test's (as a runtime's rootfs), then sets the
// bind's propagation ("rslave" or "rprivate") and sleeps.
func startContainer(t *testing.T, target, dir, propagation string) *container {
	t.Helper()
	script := fmt.Sprintf("mount --rbind %q %q && mount --make-%s %q && echo ready && exec sleep 600",
		target, dir, propagation, dir)
	cmd := exec.Command("unshare", "--mount", "--propagation", "slave", "sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &testenv.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	c := &container{pid: cmd.Process.Pid, path: dir}
	testenv.Eventually(t, 10*time.Second, "container started", func() error {
		select {
		case <-exited:
			t.Fatalf("container exited: %s", out)
		default:
		}
		if !strings.Contains(out.String(), "ready") {
			return errors.New("not ready")
		}
		return nil
	})
	return c
}

// read reads a file of the volume from inside the container.
func (c *container) read(rel string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nsenter", "--target", strconv.Itoa(c.pid), "--mount", "--", "cat", filepath.Join(c.path, rel))
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return b, nil
}

// TestRestoreReachesHostToContainerContainers checks what running
// containers see when the mounter dies and the plugin restores the volume.
// The kubelet's directory is a shared mount (as the kubelet makes it), the
// staging and target paths are in it, and two "containers" bind the volume's
// targets: one with HostToContainer propagation (rslave), one with None
// (rprivate). After the restore the HostToContainer container reads the
// volume again; the None container keeps its bind of the dead mount and
// sees ENOTCONN until it is restarted.
func TestRestoreReachesHostToContainerContainers(t *testing.T) {
	testenv.RequireFUSE(t)
	for _, tool := range []string{"unshare", "nsenter"} {
		_, err := exec.LookPath(tool)
		testenv.RequireOrSkip(t, tool+" (util-linux)", err)
	}
	root := shortTempDir(t)
	kubelet := filepath.Join(root, "kubelet")
	os.MkdirAll(kubelet, 0o750)
	if err := unix.Mount(kubelet, kubelet, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("", kubelet, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{root: root})
	files := e.objects("ds", 9)
	staging := filepath.Join(kubelet, "plugins", "csi.hoard.dev", "vol1", "globalmount")
	t1 := filepath.Join(kubelet, "pods", "p1", "volumes", "vol1", "mount")
	t2 := filepath.Join(kubelet, "pods", "p2", "volumes", "vol1", "mount")
	e.mustStage("vol1", staging, "ds")
	e.mustPublish("vol1", staging, t1)
	e.mustPublish("vol1", staging, t2)

	ctrA, ctrB := filepath.Join(root, "ctr-a"), filepath.Join(root, "ctr-b")
	os.MkdirAll(ctrA, 0o750)
	os.MkdirAll(ctrB, 0o750)
	hostToContainer := startContainer(t, t1, ctrA, "rslave")
	none := startContainer(t, t2, ctrB, "rprivate")
	for _, c := range []*container{hostToContainer, none} {
		if b, err := c.read("model.bin"); err != nil || !bytes.Equal(b, files["model.bin"]) {
			t.Fatalf("container reads %d bytes (%v) before the crash", len(b), err)
		}
	}

	e.mounter.kill(t)
	for _, c := range []*container{hostToContainer, none} {
		if _, err := c.read("config/conf.txt"); err == nil || !strings.Contains(err.Error(), "not connected") {
			t.Fatalf("container read after the mounter died: %v, want ENOTCONN", err)
		}
	}
	e.mounter.restart(t)
	testenv.Eventually(t, 30*time.Second, "host targets restored", func() error {
		_, err := readFile(filepath.Join(t1, "config", "conf.txt"))
		return err
	})
	expectAll(t, t2, files)

	testenv.Eventually(t, 10*time.Second, "HostToContainer container sees the restored volume", func() error {
		b, err := hostToContainer.read("model.bin")
		if err != nil {
			return err
		}
		if !bytes.Equal(b, files["model.bin"]) {
			return fmt.Errorf("%d bytes, not the %d written", len(b), len(files["model.bin"]))
		}
		return nil
	})
	if _, err := none.read("config/conf.txt"); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("container with propagation None after the restore: %v, want ENOTCONN until restarted", err)
	}

	// A second crash: the dead layer from the first restore is removed
	// (the removal propagates too) and the new mount reaches the container
	// again; no target grows past two layers.
	e.mounter.kill(t)
	e.mounter.restart(t)
	testenv.Eventually(t, 30*time.Second, "HostToContainer container sees the volume after a second restore", func() error {
		b, err := hostToContainer.read("config/conf.txt")
		if err != nil {
			return err
		}
		if !bytes.Equal(b, files["config/conf.txt"]) {
			return errors.New("wrong content")
		}
		return nil
	})
	expectAll(t, t1, files)
	expectAll(t, t2, files)
	for _, dir := range []string{t1, t2} {
		if s := stackOn(t, dir); len(s) != 2 {
			t.Errorf("%s: %d layers after two restores, want 2 (the CO's bind and the live one): %v", dir, len(s), s)
		}
	}

	for _, dir := range []string{t1, t2} {
		if err := e.unpublish("vol1", dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.unstage("vol1", staging); err != nil {
		t.Fatal(err)
	}
}
