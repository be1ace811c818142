package testenv

import (
	"context"
	"testing"
	"time"
)

func TestEtcdStopRestartKeepsDataAndPorts(t *testing.T) {
	e := StartEtcd(t)
	eps := e.Endpoints()
	cli := e.NewClient(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/testenv/k", "v1"); err != nil {
		t.Fatalf("put: %v", err)
	}

	start := time.Now()
	e.Stop(t)
	t.Logf("stop took %s", time.Since(start).Round(time.Millisecond))

	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := cli.Get(short, "/testenv/k")
	cancelShort()
	if err == nil {
		t.Fatalf("get succeeded while etcd was stopped")
	}

	start = time.Now()
	e.Restart(t)
	t.Logf("restart took %s", time.Since(start).Round(time.Millisecond))
	if got := e.Endpoints(); len(got) != 1 || got[0] != eps[0] {
		t.Fatalf("endpoints changed across restart: %v -> %v", eps, got)
	}

	resp, err := cli.Get(ctx, "/testenv/k")
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("data lost across restart: %v", resp.Kvs)
	}
}

func TestEtcdTwoServersIndependent(t *testing.T) {
	a, b := StartEtcd(t), StartEtcd(t)
	if a.Endpoints()[0] == b.Endpoints()[0] {
		t.Fatalf("two servers share endpoint %s", a.Endpoints()[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.NewClient(t).Put(ctx, "/k", "a"); err != nil {
		t.Fatalf("put a: %v", err)
	}
	resp, err := b.NewClient(t).Get(ctx, "/k")
	if err != nil {
		t.Fatalf("get b: %v", err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("server b sees server a's key")
	}
}
