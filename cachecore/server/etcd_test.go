package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"hoard.dev/hoard/tests/testenv"
)

// TestEtcdMembersFormACluster starts three members the way the Helm chart's
// StatefulSet does (each told the whole initial cluster), writes through one
// and reads through another, then checks that the cluster serves with one
// member gone, and that a restarted member comes back from its data dir.
func TestEtcdMembersFormACluster(t *testing.T) {
	const n = 3
	cfgs := make([]EtcdConfig, n)
	var initial []string
	for i := range cfgs {
		cfgs[i] = EtcdConfig{
			Name: fmt.Sprintf("coordinator-%d", i), Dir: t.TempDir(),
			ListenClient: testenv.FreeAddr(t), ListenPeer: testenv.FreeAddr(t),
			ClusterToken: "test", ReadyTimeout: time.Minute,
		}
		initial = append(initial, cfgs[i].Name+"=http://"+cfgs[i].ListenPeer)
	}
	members := make([]*EmbeddedEtcd, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(initial, ",")
		wg.Add(1)
		go func() { // a new cluster forms only when a quorum has started
			defer wg.Done()
			members[i], errs[i] = StartEtcdMember(context.Background(), cfgs[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		t.Cleanup(members[i].Close)
	}
	client := func(i int) *clientv3.Client {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{members[i].Endpoint()}, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client(0).Put(ctx, "/hoard/test", "one"); err != nil {
		t.Fatalf("put through member 0: %v", err)
	}
	resp, err := client(2).Get(ctx, "/hoard/test")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "one" {
		t.Fatalf("get through member 2: %v %v", resp, err)
	}
	list, err := client(1).MemberList(ctx)
	if err != nil || len(list.Members) != n {
		t.Fatalf("member list: %v %v", list, err)
	}
	for i := range members {
		if code := httpStatus(t, members[i].Endpoint()+"/readyz"); code != http.StatusOK {
			t.Errorf("member %d /readyz: %d", i, code)
		}
	}

	// One of three gone: the other two still have a quorum.
	members[2].Close()
	if _, err := client(1).Put(ctx, "/hoard/test", "two"); err != nil {
		t.Fatalf("put with a member down: %v", err)
	}
	// Back from its data dir (the initial cluster is not read again).
	again, err := StartEtcdMember(ctx, cfgs[2])
	if err != nil {
		t.Fatalf("restart member 2: %v", err)
	}
	t.Cleanup(again.Close)
	members[2] = again
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err = client(2).Get(ctx, "/hoard/test", clientv3.WithSerializable())
		if err == nil && len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == "two" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted member never caught up: %v %v", resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestEtcdConfigErrors(t *testing.T) {
	ok := EtcdConfig{Name: "m0", Dir: "/tmp/x", ListenClient: "127.0.0.1:1", ListenPeer: "127.0.0.1:2"}
	cases := []struct {
		name string
		mod  func(*EtcdConfig)
		want string
	}{
		{"no name", func(c *EtcdConfig) { c.Name = "" }, "--name"},
		{"no dir", func(c *EtcdConfig) { c.Dir = "" }, "--data-dir"},
		{"url as listen", func(c *EtcdConfig) { c.ListenClient = "http://0.0.0.0:2379" }, "want host:port"},
		{"wildcard without advertise", func(c *EtcdConfig) { c.ListenPeer = "0.0.0.0:2380" }, "--advertise-peer-url"},
		{"bad advertise", func(c *EtcdConfig) { c.AdvertiseClient = "https://x:1" }, "want http://host:port"},
		{"advertise without port", func(c *EtcdConfig) { c.AdvertiseClient = "http://x" }, "want http://host:port"},
		{"self missing", func(c *EtcdConfig) { c.InitialCluster = "m1=http://127.0.0.1:2" }, "not in the initial cluster"},
		{"self elsewhere", func(c *EtcdConfig) {
			c.AdvertisePeer, c.InitialCluster = "http://127.0.0.1:2", "m0=http://127.0.0.1:3"
		}, "advertises"},
		{"duplicate", func(c *EtcdConfig) { c.InitialCluster = "m0=http://127.0.0.1:2,m0=http://127.0.0.1:4" }, "twice"},
		{"malformed", func(c *EtcdConfig) { c.InitialCluster = "m0" }, "name=http://host:port"},
		{"too many", func(c *EtcdConfig) {
			var s []string
			for i := range 8 {
				s = append(s, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, 2+i))
			}
			c.InitialCluster = strings.Join(s, ",")
		}, "at most 7"},
		{"negative quota", func(c *EtcdConfig) { c.QuotaBytes = -1 }, "--quota"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			_, err := c.embedConfig()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := ok.embedConfig(); err != nil {
		t.Fatalf("a good config: %v", err)
	}
	// A StatefulSet member: wildcard listeners, its URLs from its entry in
	// the initial cluster.
	sts := EtcdConfig{Name: "m1", Dir: "/tmp/x", ListenClient: "0.0.0.0:2379", ListenPeer: "0.0.0.0:2380",
		InitialCluster: "m0=http://m0.svc:2380,m1=http://m1.svc:2380,m2=http://m2.svc:2380"}
	e, err := sts.embedConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got := e.AdvertisePeerUrls[0].String(); got != "http://m1.svc:2380" {
		t.Errorf("advertised peer URL %s", got)
	}
	if got := e.AdvertiseClientUrls[0].String(); got != "http://m1.svc:2379" {
		t.Errorf("advertised client URL %s", got)
	}
}
