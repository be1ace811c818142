package membership

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestEtcdRegisterCloseRestart(t *testing.T) {
	e := newEnv(t)
	w := e.watch(t)
	r1, r2, _ := e.register(t, "w1"), e.register(t, "w2"), e.register(t, "w3")

	v, took := waitFor(t, w, 5*time.Second, "3 workers alive", allAlive("w1", "w2", "w3"))
	t.Logf("3 workers alive after %s", took)
	if got := ids(v.Registered); !slices.Equal(got, []string{"w1", "w2", "w3"}) {
		t.Fatalf("registered = %v", got)
	}
	if v.Registered[0] != r1.Member() {
		t.Fatalf("registered %+v, want %+v", v.Registered[0], r1.Member())
	}

	mustNot(t, r2.Close(), "close w2")
	v, took = waitFor(t, w, testTTL+2*time.Second, "w2 registered but not alive", func(v View) bool {
		return registered(v, "w2") && !v.Alive["w2"]
	})
	t.Logf("w2 not alive %s after Close", took)
	if !v.Alive["w1"] || !v.Alive["w3"] {
		t.Fatalf("closing w2 changed others: alive %v", v.Alive)
	}

	// Restart under the same ID, at a new address.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r2b, err := Register(ctx, e.cfg, Member{ID: "w2", Addr: "w2.local:8080"})
	mustNot(t, err, "re-register w2")
	t.Cleanup(func() { _ = r2b.Close() })
	v, _ = waitFor(t, w, 5*time.Second, "w2 alive again at its new address", func(v View) bool {
		return v.Alive["w2"] && v.Registered[1].Addr == "w2.local:8080"
	})
	if len(v.Registered) != 3 || v.Registered[1].Weight != 1 {
		t.Fatalf("after restart: %+v", v.Registered)
	}
}

func TestEtcdKilledWorkerExpiresAfterTTL(t *testing.T) {
	e := newEnv(t)
	w := e.watch(t)
	r := e.register(t, "w1")
	e.register(t, "w2")
	waitFor(t, w, 5*time.Second, "both alive", allAlive("w1", "w2"))

	r.kill()
	v, took := waitFor(t, w, testTTL+3*time.Second, "w1 not alive", func(v View) bool { return !v.Alive["w1"] })
	t.Logf("killed worker not alive after %s (TTL %s)", took, testTTL)
	if took < testTTL/4 {
		t.Fatalf("w1 gone after %s: that is a revoke, not an expiry", took)
	}
	if !registered(v, "w1") || !v.Alive["w2"] {
		t.Fatalf("after expiry: registered %v alive %v", ids(v.Registered), v.Alive)
	}
}

func TestEtcdRevokedLeaseIsReplaced(t *testing.T) {
	e := newEnv(t)
	w := e.watch(t)
	r := e.register(t, "w1")
	waitFor(t, w, 5*time.Second, "w1 alive", allAlive("w1"))
	old := r.currentLease()

	// Someone revokes the worker's lease behind its back (an operator, or an
	// etcd that lost it): the worker notices and registers again.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := e.etcd.NewClient(t).Revoke(ctx, old)
	mustNot(t, err, "revoke")
	start := time.Now()
	for r.currentLease() == old {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("lease not replaced after revoke")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, w, 5*time.Second, "w1 alive again", allAlive("w1"))
	t.Logf("worker on a new lease and alive %s after its lease was revoked", time.Since(start).Round(time.Millisecond))
}

func TestEtcdOutageKeepsViewAndRecovers(t *testing.T) {
	e := newEnv(t)
	w := e.watch(t)
	ra, rb := e.register(t, "a"), e.register(t, "b")
	before, _ := waitFor(t, w, 5*time.Second, "a and b alive", allAlive("a", "b"))
	leaseA, leaseB := ra.currentLease(), rb.currentLease()
	mark := e.log.lines()

	start := time.Now()
	e.etcd.Stop(t)
	t.Logf("etcd stopped in %s", time.Since(start).Round(time.Millisecond))

	// Current answers at once with the last view, now and after the leases
	// would have expired.
	for _, pause := range []time.Duration{0, testTTL + 1500*time.Millisecond} {
		time.Sleep(pause)
		start := time.Now()
		v := w.Current()
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("Current took %s while etcd was down", d)
		}
		if !v.sameMembers(before) || v.Rev != before.Rev {
			t.Fatalf("view changed while etcd was down: %+v, was %+v", v, before)
		}
	}

	start = time.Now()
	e.etcd.Restart(t)
	t.Logf("etcd restarted in %s", time.Since(start).Round(time.Millisecond))
	recovered := time.Now()

	e.register(t, "c")
	waitFor(t, w, 15*time.Second, "c seen by the old watcher, a and b alive", allAlive("a", "b", "c"))
	t.Logf("new worker registered and seen %s after restart", time.Since(recovered).Round(time.Millisecond))

	// Each worker either kept its lease (etcd restores leases on restart
	// and renews them in full; if the worker asked in time it still holds
	// it) or replaced it with a new one and moved its alive key there.
	admin := e.etcd.NewClient(t)
	for _, c := range []struct {
		r   *Registration
		old clientv3.LeaseID
	}{{ra, leaseA}, {rb, leaseB}} {
		id := c.r.Member().ID
		deadline := time.Now().Add(10 * time.Second)
		for {
			lease := c.r.currentLease()
			renewed := c.r.Stats().Renewals.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := admin.Get(ctx, e.cfg.aliveKey(id))
			cancel()
			onLease := err == nil && len(resp.Kvs) == 1 && clientv3.LeaseID(resp.Kvs[0].Lease) == lease
			if onLease && (lease != c.old || renewed > 0) {
				t.Logf("%s: alive key on lease %x (old %x)", id, lease, c.old)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: alive key not on the worker's live lease (old %x, current %x, err %v)", id, c.old, lease, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("old workers' alive keys on live leases %s after restart", time.Since(recovered).Round(time.Millisecond))

	// Once the old leases have expired, everyone is still alive.
	time.Sleep(testTTL + time.Second)
	if v := w.Current(); !allAlive("a", "b", "c")(v) {
		t.Fatalf("after old leases expired: registered %v alive %v", ids(v.Registered), v.Alive)
	}

	// One line per state change, not one per retry: each of the three
	// clients that lived through the outage says once that it lost etcd.
	if n := e.log.count(mark, "etcd connection lost"); n < 1 || n > 3 {
		t.Errorf("%d 'connection lost' lines, want 1..3", n)
	}
	// Each worker's keep-alive gave up once: it kept or replaced its lease.
	if n := e.log.count(mark, "lease lost") + e.log.count(mark, "lease kept after a stall"); n != 2 {
		t.Errorf("%d 'lease lost' or 'kept' lines, want 2", n)
	}
	if n := e.log.count(mark, "worker down"); n != 0 {
		t.Errorf("a worker was reported down through the outage")
	}
	if n := e.log.lines() - mark; n > 25 {
		t.Errorf("%d log lines through one outage; want few", n)
	}
}

func TestEtcdCompactedWatchResyncs(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := e.cfg.normalize()
	mustNot(t, err, "config")
	cli, err := newClient(cfg)
	mustNot(t, err, "client")
	w := newEtcdWatcher(cfg, cli)
	t.Cleanup(func() { _ = w.Close() })
	mustNot(t, w.sync(ctx), "first read")
	stale := w.rev

	// History the watcher has not seen, then compacted away.
	e.register(t, "w1")
	admin := e.etcd.NewClient(t)
	_, err = admin.Put(ctx, cfg.aliveKey("ghost"), "")
	mustNot(t, err, "put")
	resp, err := admin.Delete(ctx, cfg.aliveKey("ghost"))
	mustNot(t, err, "delete")
	_, err = admin.Compact(ctx, resp.Header.Revision)
	mustNot(t, err, "compact")

	mark := e.log.lines()
	w.start(stale)
	v, _ := waitFor(t, w, 5*time.Second, "w1 alive after resync", allAlive("w1"))
	if len(v.Registered) != 1 || len(v.Alive) != 1 || v.Rev < resp.Header.Revision {
		t.Fatalf("after resync: %+v", v)
	}
	if e.log.count(mark, rpctypes.ErrCompacted.Error()) != 1 {
		t.Errorf("compaction not logged once")
	}
}

func TestEtcdAliveOnlyWithRegistration(t *testing.T) {
	e := newEnv(t)
	w := e.watch(t)
	admin := e.etcd.NewClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put := func(key, val string) int64 {
		t.Helper()
		resp, err := admin.Put(ctx, key, val)
		mustNot(t, err, "put %s", key)
		return resp.Header.Revision
	}
	caughtUp := func(rev int64) func(View) bool { return func(v View) bool { return v.Rev >= rev } }

	// A liveness key without a registration, and a registration that does
	// not parse or names another worker: none of them is a worker.
	put(e.cfg.aliveKey("ghost"), "")
	put(e.cfg.workerKey("bad"), "{not json")
	put(e.cfg.aliveKey("bad"), "")
	put(e.cfg.workerKey("liar"), `{"id":"someone-else","addr":"x:1"}`)
	rev := put(e.cfg.aliveKey("liar"), "")
	v, _ := waitFor(t, w, 5*time.Second, "caught up", caughtUp(rev))
	if len(v.Registered) != 0 || len(v.Alive) != 0 {
		t.Fatalf("unregistered keys made workers: %+v", v)
	}

	// Registering completes the ghost.
	m := Member{ID: "ghost", Addr: "ghost:1", Weight: 2, Capacity: 5}
	raw, _ := json.Marshal(m)
	put(e.cfg.workerKey("ghost"), string(raw))
	v, _ = waitFor(t, w, 5*time.Second, "ghost alive", allAlive("ghost"))
	if !slices.Equal(v.Registered, []Member{m}) {
		t.Fatalf("registered = %+v", v.Registered)
	}

	// Without its registration it is not alive, even with a liveness key.
	resp, err := admin.Delete(ctx, e.cfg.workerKey("ghost"))
	mustNot(t, err, "delete")
	v, _ = waitFor(t, w, 5*time.Second, "caught up", caughtUp(resp.Header.Revision))
	if len(v.Registered) != 0 || v.Alive["ghost"] {
		t.Fatalf("ghost survives its registration: %+v", v)
	}
}

func TestEtcdDeregister(t *testing.T) {
	e := newEnv(t)
	w := e.watch(t)
	r := e.register(t, "w1")
	e.register(t, "w2")
	waitFor(t, w, 5*time.Second, "both alive", allAlive("w1", "w2"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mustNot(t, r.Close(), "close")
	mustNot(t, Deregister(ctx, e.cfg, "w1"), "deregister")
	v, _ := waitFor(t, w, 5*time.Second, "w1 gone", func(v View) bool { return !registered(v, "w1") })
	if !slices.Equal(ids(v.Registered), []string{"w2"}) || !v.Alive["w2"] {
		t.Fatalf("after deregister: %+v", v)
	}
	mustNot(t, Deregister(ctx, e.cfg, "never-was"), "deregister unknown worker")
}

func TestEtcdRegistrationJSON(t *testing.T) {
	e := newEnv(t)
	r := e.register(t, "w1")
	admin := e.etcd.NewClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := admin.Get(ctx, "/hoard/test/workers/w1")
	mustNot(t, err, "get")
	if len(resp.Kvs) != 1 || resp.Kvs[0].Lease != 0 {
		t.Fatalf("registration: %v (must exist and have no lease)", resp.Kvs)
	}
	var raw map[string]any
	mustNot(t, json.Unmarshal(resp.Kvs[0].Value, &raw), "decode")
	want := map[string]any{"id": "w1", "addr": "w1.local:7070", "weight": 1.0, "capacity_bytes": float64(1 << 30)}
	if len(raw) != len(want) {
		t.Fatalf("stored %v, want %v", raw, want)
	}
	for k, v := range want {
		if raw[k] != v {
			t.Fatalf("stored %s = %v, want %v", k, raw[k], v)
		}
	}
	m, err := decodeMember("w1", resp.Kvs[0].Value)
	mustNot(t, err, "decodeMember")
	if m != r.Member() {
		t.Fatalf("round trip: %+v, want %+v", m, r.Member())
	}
	alive, err := admin.Get(ctx, "/hoard/test/alive/w1")
	mustNot(t, err, "get alive")
	if len(alive.Kvs) != 1 || clientv3.LeaseID(alive.Kvs[0].Lease) != r.currentLease() {
		t.Fatalf("alive key %v not on lease %x", alive.Kvs, r.currentLease())
	}
	ttl, err := admin.TimeToLive(ctx, r.currentLease())
	mustNot(t, err, "ttl")
	if ttl.GrantedTTL != int64(testTTL/time.Second) {
		t.Fatalf("granted TTL %d s, want %s", ttl.GrantedTTL, testTTL)
	}
}

func TestEtcdUnreachable(t *testing.T) {
	// A port nobody listens on: the server is stopped for good.
	e := newEnv(t)
	e.etcd.Stop(t)
	for name, call := range map[string]func(ctx context.Context) error{
		"Watch": func(ctx context.Context) error {
			w, err := Watch(ctx, e.cfg)
			if err == nil {
				w.Close()
			}
			return err
		},
		"Register": func(ctx context.Context) error {
			r, err := Register(ctx, e.cfg, Member{ID: "w", Addr: "a:1"})
			if err == nil {
				r.Close()
			}
			return err
		},
		"Deregister": func(ctx context.Context) error { return Deregister(ctx, e.cfg, "w") },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		cancel()
		if err == nil {
			t.Errorf("%s succeeded with etcd down", name)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s took %s past its context", name, d)
		}
	}
}

func TestEtcdCloseStopsGoroutines(t *testing.T) {
	e := newEnv(t)
	// The etcd server's own goroutines settle after start; measure after.
	time.Sleep(200 * time.Millisecond)
	base := runtime.NumGoroutine()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := Watch(ctx, e.cfg)
	mustNot(t, err, "watch")
	r1, err := Register(ctx, e.cfg, Member{ID: "w1", Addr: "a:1"})
	mustNot(t, err, "register")
	r2, err := Register(ctx, e.cfg, Member{ID: "w2", Addr: "a:2"})
	mustNot(t, err, "register")
	waitFor(t, w, 5*time.Second, "both alive", allAlive("w1", "w2"))
	during := runtime.NumGoroutine()

	mustNot(t, r1.Close(), "close r1")
	r2.kill()
	mustNot(t, w.Close(), "close watcher")
	mustNot(t, w.Close(), "second close")
	if v := w.Current(); !registered(v, "w1") {
		t.Fatalf("closed watcher lost its view: %+v", v)
	}

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d while running, %d after Close", base, during, runtime.NumGoroutine())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("goroutines: %d before, %d while running, back to %d", base, during, runtime.NumGoroutine())
}

func TestEtcdConfigInvalid(t *testing.T) {
	good := EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}, Cluster: "c"}
	member := Member{ID: "w1", Addr: "a:1"}
	for _, c := range []struct {
		name string
		cfg  func(*EtcdConfig)
		m    func(*Member)
		want string
	}{
		{"no endpoints", func(c *EtcdConfig) { c.Endpoints = nil }, nil, "no etcd endpoints"},
		{"blank endpoint", func(c *EtcdConfig) { c.Endpoints = []string{" "} }, nil, "empty etcd endpoint"},
		{"empty cluster", func(c *EtcdConfig) { c.Cluster = "" }, nil, "empty cluster name"},
		{"cluster with slash", func(c *EtcdConfig) { c.Cluster = "a/b" }, nil, "cluster name"},
		{"negative TTL", func(c *EtcdConfig) { c.TTL = -time.Second }, nil, "negative TTL"},
		{"negative dial timeout", func(c *EtcdConfig) { c.DialTimeout = -1 }, nil, "negative dial timeout"},
		{"empty member ID", nil, func(m *Member) { m.ID = "" }, "empty member ID"},
		{"member ID with space", nil, func(m *Member) { m.ID = "w 1" }, "member ID"},
		{"empty addr", nil, func(m *Member) { m.Addr = "" }, "empty address"},
		{"negative weight", nil, func(m *Member) { m.Weight = -1 }, "weight"},
		{"NaN weight", nil, func(m *Member) { m.Weight = math.NaN() }, "weight"},
		{"negative capacity", nil, func(m *Member) { m.Capacity = -1 }, "negative capacity"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, m := good, member
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			if c.m != nil {
				c.m(&m)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := Register(ctx, cfg, m)
			errs := []error{err}
			if c.m == nil {
				_, err = Watch(ctx, cfg)
				errs = append(errs, err, Deregister(ctx, cfg, m.ID))
			} else {
				_, err = Static(m)
				errs = append(errs, err)
			}
			for _, err := range errs {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("error %v, want one containing %q", err, c.want)
				}
			}
		})
	}
	if _, err := good.normalize(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	n, _ := EtcdConfig{Endpoints: []string{"x"}, Cluster: "c", TTL: 1500 * time.Millisecond}.normalize()
	if n.TTL != 2*time.Second || n.DialTimeout != DefaultDialTimeout || n.Logger == nil {
		t.Fatalf("defaults: %+v", n)
	}
	if err := Deregister(context.Background(), good, "a/b"); err == nil {
		t.Fatalf("Deregister accepted ID a/b")
	}
}

func TestStatic(t *testing.T) {
	src, err := Static(Member{ID: "b", Addr: "b:1", Weight: 2}, Member{ID: "a", Addr: "a:1"})
	mustNot(t, err, "Static")
	v := src.Current()
	want := []Member{{ID: "a", Addr: "a:1", Weight: 1}, {ID: "b", Addr: "b:1", Weight: 2}}
	if !slices.Equal(v.Registered, want) || !v.Alive["a"] || !v.Alive["b"] || len(v.Alive) != 2 {
		t.Fatalf("view %+v", v)
	}
	select {
	case <-src.Changed():
		t.Fatalf("static source reported a change")
	default:
	}
	if _, err := Static(Member{ID: "a", Addr: "x"}, Member{ID: "a", Addr: "y"}); err == nil {
		t.Fatalf("duplicate ID accepted")
	}
	empty, err := Static()
	mustNot(t, err, "empty Static")
	if v := empty.Current(); len(v.Registered) != 0 || v.Alive == nil {
		t.Fatalf("empty view %+v", v)
	}
}

func TestMemberJSON(t *testing.T) {
	m := Member{ID: "w-1", Addr: "10.0.0.1:7070", Weight: 1.5, Capacity: 100 << 30}
	raw, err := json.Marshal(m)
	mustNot(t, err, "marshal")
	if want := `{"id":"w-1","addr":"10.0.0.1:7070","weight":1.5,"capacity_bytes":107374182400}`; string(raw) != want {
		t.Fatalf("json %s, want %s", raw, want)
	}
	got, err := decodeMember("w-1", raw)
	mustNot(t, err, "decode")
	if got != m {
		t.Fatalf("round trip %+v, want %+v", got, m)
	}
	// Weight 0 (or absent) reads as 1.
	got, err = decodeMember("w", []byte(`{"id":"w","addr":"a:1"}`))
	if err != nil || got.Weight != 1 {
		t.Fatalf("default weight: %+v, %v", got, err)
	}
	for _, bad := range []string{`{`, `{"id":"other","addr":"a:1"}`, `{"id":"w"}`, `{"id":"w","addr":"a","weight":-2}`} {
		if _, err := decodeMember("w", []byte(bad)); err == nil {
			t.Errorf("decodeMember accepted %s", bad)
		}
	}
	var syntax *json.SyntaxError
	if _, err := decodeMember("w", []byte(`{`)); !errors.As(err, &syntax) && !strings.Contains(err.Error(), "unexpected end") {
		t.Errorf("decode error does not wrap the JSON error: %v", err)
	}
}

// TestEtcdStalledKeepAliveKeepsLease: etcd renews the lease but the worker
// hears no answer for longer than the TTL, as when its process is starved
// of CPU. The etcd client gives the lease up; the worker finds etcd still
// holds it and keeps it: nobody sees the worker go down, nothing is
// written, and no new lease is granted.
func TestEtcdStalledKeepAliveKeepsLease(t *testing.T) {
	e := newEnv(t)
	w := e.watch(t)
	p := newHoldProxy(t, e.etcd.Endpoints()[0])
	cfg := e.cfg
	cfg.Endpoints = []string{p.Endpoint()}
	cfg.TTL = 5 * time.Second
	cfg.DialTimeout = 10 * time.Second // the renewal after the stall waits out the hold
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := Register(ctx, cfg, Member{ID: "w1", Addr: "w1.local:7070"})
	mustNot(t, err, "register")
	t.Cleanup(func() { _ = r.Close() })
	before, _ := waitFor(t, w, 5*time.Second, "w1 alive", allAlive("w1"))
	old := r.currentLease()
	mark := e.log.lines()
	admin := e.etcd.NewClient(t)

	// Hold etcd's answers until the etcd client has given the lease up (no
	// answer within the TTL) and sent its one renewal after that: then etcd
	// hears nothing more, and the lease's time runs down. Released with 2 s
	// of it left.
	held := time.Now()
	release := p.Hold()
	for {
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := admin.TimeToLive(ctx, old)
		cancel()
		mustNot(t, err, "time to live")
		if resp.TTL <= 0 {
			release()
			t.Fatal("the lease expired while etcd's answers were held")
		}
		if time.Since(held) > cfg.TTL+time.Second && resp.TTL <= 2 {
			break
		}
		if time.Since(held) > 30*time.Second {
			release()
			t.Fatalf("the lease is still renewed %s into the hold (TTL left %d s)", time.Since(held), resp.TTL)
		}
	}
	release()
	t.Logf("answers held for %s", time.Since(held).Round(time.Millisecond))
	deadline := time.Now().Add(15 * time.Second)
	for e.log.count(mark, "lease kept after a stall") == 0 {
		if e.log.count(mark, "lease lost") > 0 || time.Now().After(deadline) {
			t.Fatalf("the worker did not keep its lease through a stall of its keep-alives (lease now %x, was %x)", r.currentLease(), old)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lease := r.currentLease(); lease != old {
		t.Errorf("lease %x replaced by %x", old, lease)
	}
	if n := r.Stats().Lapses.Load(); n != 0 {
		t.Errorf("%d lapses counted, want 0", n)
	}
	// It goes on renewing the same lease.
	renewals := r.Stats().Renewals.Load()
	time.Sleep(cfg.TTL)
	if r.Stats().Renewals.Load() == renewals {
		t.Error("no renewal after the stall")
	}
	if v := w.Current(); !v.sameMembers(before) || v.Rev != before.Rev {
		t.Errorf("the view changed through the stall: %+v, was %+v", v, before)
	}
	if n := e.log.count(mark, "worker down"); n != 0 {
		t.Errorf("the worker was reported down %d times", n)
	}
}
