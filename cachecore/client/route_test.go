package client

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/membership"
	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/ufs"
)

// TestPickOrder: live workers first, then those that failed lately, then
// those whose lease lapsed; never more than MaxAttempts.
func TestPickOrder(t *testing.T) {
	c := &Client{cfg: Config{MaxAttempts: 3, LivenessGrace: time.Minute}}
	rt := &routeTable{
		members: []membership.Member{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}},
		alive:   []bool{false, true, true, true},
		lapsed:  make([]time.Time, 4),
	}
	c.suspects.Store("b", time.Now().Add(time.Minute))
	got := c.pick(rt, []int{0, 1, 2, 3})
	want := []string{"c", "d", "b"}
	if len(got) != len(want) {
		t.Fatalf("pick = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].ID != want[i] {
			t.Fatalf("pick = %v, want %v", got, want)
		}
	}
	// With every lease lapsed the registered workers are still tried, in
	// routing order, rather than none.
	rt.alive = []bool{false, false, false, false}
	c.suspects.Delete("b")
	got = c.pick(rt, []int{2, 0, 1, 3})
	if len(got) != 3 || got[0].ID != "c" || got[1].ID != "a" || got[2].ID != "b" {
		t.Fatalf("all lapsed: pick = %v, want c, a, b", got)
	}
}

// TestLivenessGrace: a worker whose lease lapsed a moment ago keeps its
// place in the order; after the grace it goes to the back.
func TestLivenessGrace(t *testing.T) {
	c := &Client{cfg: Config{MaxAttempts: 3, LivenessGrace: 10 * time.Second}}
	rt := &routeTable{
		members: []membership.Member{{ID: "a"}, {ID: "b"}, {ID: "c"}},
		alive:   []bool{false, true, true},
		lapsed:  []time.Time{time.Now().Add(-time.Second), {}, {}},
	}
	if got := c.pick(rt, []int{0, 1, 2}); got[0].ID != "a" {
		t.Errorf("owner lapsed 1 s ago: order %v, want it first", got)
	}
	rt.lapsed[0] = time.Now().Add(-time.Minute)
	if got := c.pick(rt, []int{0, 1, 2}); got[0].ID != "b" || got[2].ID != "a" {
		t.Errorf("owner lapsed a minute ago: order %v, want it last", got)
	}
}

// views is a membership source whose view the test sets.
type views struct {
	mu      sync.Mutex
	v       membership.View
	changed chan struct{}
}

func (s *views) Current() membership.View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v
}

func (s *views) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *views) set(alive map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v.Alive = alive
}

type noSources struct{}

func (noSources) Open(context.Context, objid.Source) (ufs.UFS, error) {
	return nil, errors.New("no sources in this test")
}

// TestGraceForWorkersNeverSeenAlive: a client that starts while a
// registered worker's lease is lapsed routes to it as the clients that saw
// it alive do, within LivenessGrace of its start; after that it goes to the
// back.
func TestGraceForWorkersNeverSeenAlive(t *testing.T) {
	src := &views{changed: make(chan struct{}), v: membership.View{
		Registered: []membership.Member{{ID: "a", Weight: 1}, {ID: "b", Weight: 1}, {ID: "c", Weight: 1}},
		Alive:      map[string]bool{"b": true, "c": true},
	}}
	c, err := New(Config{Members: src, Sources: noSources{}, LivenessGrace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rt := c.routes.Load()
	a := slices.IndexFunc(rt.members, func(m membership.Member) bool { return m.ID == "a" })
	order := []int{a, (a + 1) % 3, (a + 2) % 3}
	if got := c.pick(rt, order); got[0].ID != "a" {
		t.Errorf("lapsed owner never seen alive, at the client's start: order %v, want it first", got)
	}
	c.cfg.LivenessGrace = time.Nanosecond
	time.Sleep(time.Millisecond)
	if got := c.pick(rt, order); got[2].ID != "a" {
		t.Errorf("lapsed owner never seen alive, after the grace: order %v, want it last", got)
	}
}

// TestWorkerBackIsTriedAgain: a worker that failed (a suspect) and lost
// its lease is tried again as soon as it holds a lease again (it was
// restarted), not only when its suspicion runs out.
func TestWorkerBackIsTriedAgain(t *testing.T) {
	m := &views{changed: make(chan struct{}), v: membership.View{Registered: []membership.Member{{ID: "a", Addr: "a:1"}, {ID: "b", Addr: "b:1"}}}}
	m.set(map[string]bool{"a": true, "b": true})
	c := &Client{cfg: Config{MaxAttempts: 3, LivenessGrace: time.Second, SuspectFor: time.Minute}, members: m}
	if err := c.refresh(); err != nil {
		t.Fatal(err)
	}
	c.suspects.Store("b", time.Now().Add(time.Minute)) // a read from b failed
	m.set(map[string]bool{"a": true})                  // b died: its lease went
	c.refresh()
	if _, ok := c.suspects.Load("b"); !ok {
		t.Fatal("suspicion dropped while the worker is down")
	}
	m.set(map[string]bool{"a": true, "b": true}) // b is back
	c.refresh()
	if _, ok := c.suspects.Load("b"); ok {
		t.Error("a worker back with a new lease is still skipped as a suspect")
	}
}
