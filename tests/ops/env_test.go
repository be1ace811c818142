// Package ops_test runs hoard's processes as an operator does (a cache
// cluster with its coordinator, workers, a mount, the CSI plugin and the
// mounter, each its own process serving /metrics on its --health-addr or
// --metrics-addr) over a real MinIO, and
// checks what operators look at: the metrics the dashboard queries, hoard
// status, and hoard load.
package ops_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/tests/testenv"
)

const MiB = 1 << 20

// cluster is MinIO behind a counting proxy, a coordinator and two workers,
// each its own process, the workers registered in cluster "default".
type cluster struct {
	minio  *testenv.MinIO
	proxy  *testenv.CountingProxy
	bucket string
	etcd   string // client URL
	s3env  []string
	s3     []string // S3 flags, through the proxy

	coordinator        *testenv.Proc
	coordinatorMetrics string // host:port
	workers            []*testenv.WorkerProc
	workerMetrics      string // --health-addr of workers[0] (its /metrics)
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{minio: testenv.StartMinIO(t), bucket: "ops"}
	c.minio.MakeBucket(t, c.bucket)
	c.proxy = testenv.NewCountingProxy(t, c.minio.Endpoint())
	c.s3env = []string{"AWS_ACCESS_KEY_ID=" + c.minio.AccessKey(), "AWS_SECRET_ACCESS_KEY=" + c.minio.SecretKey()}
	c.s3 = []string{"--s3-endpoint", c.proxy.Endpoint(), "--s3-insecure", "--s3-path-style", "--s3-region", "us-east-1"}

	client, peer := testenv.FreeAddr(t), testenv.FreeAddr(t)
	c.etcd = "http://" + client
	c.coordinatorMetrics = testenv.FreeAddr(t)
	c.coordinator = testenv.StartHoard(t, "coordinator", nil, "coordinator", "--name", "c0", "--data-dir", t.TempDir(),
		"--listen-client", client, "--listen-peer", peer, "--metrics-addr", c.coordinatorMetrics, "--log-format", "json")
	c.coordinator.WaitHTTP(t, "http://"+c.coordinatorMetrics+"/metrics", 60*time.Second)

	c.workerMetrics = testenv.FreeAddr(t)
	for i, id := range []string{"w-a", "w-b"} {
		o := testenv.WorkerOptions{ID: id, Etcd: []string{c.etcd}, Cluster: "default", S3: c.minio, S3Endpoint: c.proxy.Endpoint()}
		if i == 0 {
			o.Extra = []string{"--health-addr", c.workerMetrics}
		}
		c.workers = append(c.workers, testenv.StartWorkerProc(t, o))
	}
	return c
}

// mount starts `hoard mount` of prefix through the cluster, with metrics,
// and waits until it is mounted. It returns the mount point.
func (c *cluster) mount(t *testing.T, prefix, metricsAddr string) (string, *testenv.Proc) {
	t.Helper()
	testenv.RequireFUSE(t)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"mount", "--etcd", c.etcd, "--metrics-addr", metricsAddr, "--log-format", "json"}, c.s3...)
	args = append(args, testenv.ClientTLSArgs(t)...)
	args = append(args, "s3://"+c.bucket+"/"+prefix, mnt)
	p := testenv.StartHoard(t, "mount", c.s3env, args...)
	p.WaitLog(t, "mounted on", 60*time.Second)
	t.Cleanup(func() {
		p.Stop() // SIGTERM: hoard mount unmounts
		// If it had to be killed, its mount is left broken: clear it.
		syscall.Unmount(mnt, syscall.MNT_DETACH)
	})
	return mnt, p
}

// nodeEnv is one node: a mounter reading through the cluster and the CSI
// node plugin handing it volumes, each its own process.
type nodeEnv struct {
	c              *cluster
	socket         string
	mounter        *testenv.Proc
	mounterMetrics string
	plugin         *testenv.Proc
	csi            csi.NodeClient
	dir            string
}

func (c *cluster) startNode(t *testing.T) *nodeEnv {
	t.Helper()
	testenv.RequireFUSE(t)
	dir, err := os.MkdirTemp("", "ops-node") // short: a socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &nodeEnv{c: c, socket: filepath.Join(dir, "m.sock"), mounterMetrics: testenv.FreeAddr(t), dir: dir}
	n.mounter = testenv.StartHoard(t, "mounter", nil, append([]string{"mounter", "--socket", n.socket, "--etcd", c.etcd,
		"--health-addr", n.mounterMetrics, "--log-format", "json"}, testenv.ClientTLSArgs(t)...)...)
	n.mounter.WaitHTTP(t, "http://"+n.mounterMetrics+"/metrics", 30*time.Second)
	addr := testenv.FreeAddr(t)
	n.plugin = testenv.StartHoard(t, "csi-node", nil, "csi", "--mode", "node", "--endpoint", "tcp://"+addr,
		"--node-id", "n1", "--state-dir", filepath.Join(dir, "state"), "--mounter-socket", n.socket,
		"--kubelet-dir", filepath.Join(dir, "kubelet"), "--log-format", "json")
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n.csi = csi.NewNodeClient(conn)
	return n
}

// stage stages volume id of prefix (through cacheCluster, "" for the
// mounter's) and returns its staging path, unstaged when the test ends.
func (n *nodeEnv) stage(t *testing.T, id, prefix, cacheCluster string) string {
	t.Helper()
	staging := filepath.Join(n.dir, "kubelet", id)
	vc := map[string]string{"bucket": n.c.bucket, "prefix": prefix, "endpoint": "http://" + n.c.proxy.Endpoint(),
		"region": "us-east-1", "pathStyle": "true"}
	if cacheCluster != "" {
		vc["cacheCluster"] = cacheCluster
	}
	secrets := map[string]string{"accessKeyID": n.c.minio.AccessKey(), "secretAccessKey": n.c.minio.SecretKey()}
	capability := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := n.csi.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging,
			VolumeCapability: capability, VolumeContext: vc, Secrets: secrets})
		if err == nil {
			break
		}
		// The plugin may not listen yet.
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			t.Fatalf("NodeStageVolume %s: %v\n%s", id, err, n.plugin.Logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := n.csi.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}); err != nil {
			t.Logf("NodeUnstageVolume %s: %v", id, err)
		}
		syscall.Unmount(staging, syscall.MNT_DETACH) // if the plugin could not
	})
	return staging
}
