package client

import (
	"testing"
	"time"

	"hoard.dev/hoard/cachecore/membership"
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
