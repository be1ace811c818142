package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"hoard.dev/hoard/tests/testenv"
)

// testMounter: the mounter (the process that serves a node's volumes) is
// killed under readers and started again; the CSI node plugin restores the
// volume (the restore path of node/, at the process level: a new
// /dev/fuse mount handed to the new mounter over its socket).
func testMounter(t *testing.T, in *infra, rep *report) {
	t.Run("mounter restarted", func(t *testing.T) {
		c := in.newCluster(t, clusterOptions{workers: 3, mounts: 2})
		n := in.workers[faultOn]
		dir := filepath.Join(n.Dir, c.name, "csi")
		kubelet := filepath.Join(dir, "kubelet")
		staging := filepath.Join(kubelet, "staging", "vol1")
		for _, d := range []string{staging, filepath.Join(dir, "cache")} {
			must(t, os.MkdirAll(d, 0o755))
		}
		key := filepath.Join(dir, "volume-id-key")
		must(t, os.WriteFile(key, []byte("faults-suite-volume-id-key-0123456789abcdef\n"), 0o600))
		mounterSock, csiSock := filepath.Join(dir, "mounter.sock"), filepath.Join(dir, "csi.sock")
		// Neither process has S3 credentials: the volume's secrets reach
		// the bucket.
		env := []string{"PATH=" + os.Getenv("PATH"), "AWS_EC2_METADATA_DISABLED=true", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"}
		margs := append([]string{"mounter", "--socket", mounterSock, "--cache-dir", filepath.Join(dir, "cache"),
			"--etcd", strings.Join(in.etcd, ","), "--cluster", c.name, "--liveness-ttl", livenessTTL.String(),
			"--hot-cache", "48MiB", "--log-level", "info"}, testenv.ClientTLSArgs(t)...)
		mounter := startProc(t, n, c.name+"-mounter", in.bin, env, margs...)
		waitFor(t, 30*time.Second, "mounter socket", func() error { _, err := os.Stat(mounterSock); return err })
		plugin := startProc(t, n, c.name+"-csi", in.bin, env, "csi", "--mode", "node", "--endpoint", "unix://"+csiSock,
			"--node-id", n.Name, "--mounter-socket", mounterSock, "--state-dir", filepath.Join(dir, "state"),
			"--restore-interval", "1s", "--volume-id-key-file", key, "--kubelet-dir", kubelet, "--log-level", "info")
		conn, err := grpc.NewClient("unix://"+csiSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		must(t, err)
		t.Cleanup(func() { conn.Close() })
		node := csi.NewNodeClient(conn)
		readerCap := &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
		}
		waitFor(t, 60*time.Second, "NodeStageVolume", func() error {
			if plugin.exited() {
				return fmt.Errorf("the plugin exited: %s", tail(plugin.logs(), 2000))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
				VolumeId: "vol1", StagingTargetPath: staging, VolumeCapability: readerCap,
				VolumeContext: map[string]string{"bucket": bucket, "endpoint": "http://" + in.proxy.Endpoint(),
					"region": "us-east-1", "pathStyle": "true"},
				Secrets: map[string]string{"accessKeyID": in.minio.AccessKey(), "secretAccessKey": in.minio.SecretKey()},
			})
			return err
		})
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "vol1", StagingTargetPath: staging})
		})
		// The volume as a mount the readers use: its root, seen in the
		// node's mount namespace.
		vol := &mount{proc: mounter, dir: staging, root: fmt.Sprintf("/proc/%d/root%s", n.Holder, staging)}
		c.mounts[smallOn] = vol // the small-file readers read the volume
		var restarted time.Time
		var gets int64
		o := c.run(t, rep, scenario{
			fault: "mounter restarted (CSI restore)",
			done:  "kill -9 of n3's mounter serving a staged volume (cluster cache) under the 16 readers, started again after 5 s; the node plugin restores the volume",
			inject: func(t *testing.T) {
				mounter.kill()
				time.Sleep(5 * time.Second)
				restarted = time.Now()
				mounter.start(t)
			},
			hold:    15 * time.Second,
			failing: "ENOTCONN while no mounter runs",
			bound:   15 * time.Second,
			check: func(t *testing.T, o *outcome) {
				in.proxy.Reset()
				rec := newRecorder()
				c.readAll(t, vol, rec)
				gets = in.proxy.TotalGETs()
				t.Logf("the volume read again after the restore: %v, %d GETs", rec.summary(), gets)
				if s := rec.summary(); s.failed > 0 {
					t.Errorf("reads of the restored volume failed: %v", s)
				}
				if gets != 0 {
					t.Errorf("the restored volume made %d GETs: its data is cached in the workers", gets)
				}
			},
		})
		// Reads are back when the last failed read ended; how long after
		// the restart that was:
		back := max(o.rec.lastFailure().Sub(restarted), 0)
		rep.mu.Lock()
		rep.rows[len(rep.rows)-1].note = fmt.Sprintf("reads failed (ENOTCONN) only while no mounter ran and until %v after it restarted; %d GETs to read the restored volume", rnd(back), gets)
		rep.mu.Unlock()
		t.Logf("last failed read %v after the mounter restarted", rnd(back))
		if back > 10*time.Second {
			t.Errorf("reads still failed %v after the mounter restarted", rnd(back))
		}
	})
}
