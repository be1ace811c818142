package flight

import (
	"context"
	"errors"
	"testing"
	"time"
)

// pageKey is a key of the test's own: the group needs no page store.
type pageKey struct {
	File string
	Page uint32
}

func (k pageKey) PageNo() uint32            { return k.Page }
func (k pageKey) WithPage(n uint32) pageKey { return pageKey{k.File, n} }

func key(p uint32) pageKey { return pageKey{File: "s/k@v", Page: p} }

func TestClaimStopsAtBusyAndCachedPages(t *testing.T) {
	var g Group[pageKey]
	cached := map[uint32]bool{5: true}
	skip := func(k pageKey) bool { return cached[k.Page] }
	if n, c := g.Claim(key(0), 3, skip); n != 3 || c == nil {
		t.Fatalf("claim 0..2 = %d, %v", n, c)
	}
	// Page 1 is in flight: joining, not claiming.
	if n, c := g.Claim(key(1), 4, skip); n != 0 || c == nil {
		t.Fatalf("claim of a page in flight = %d, %v; want 0 and its call", n, c)
	}
	// 3, 4 claimable; 5 is cached.
	if n, _ := g.Claim(key(3), 10, skip); n != 2 {
		t.Fatalf("claim from 3 = %d, want 2 (stops at cached page 5)", n)
	}
	// A cached first page: nothing to wait for.
	if n, c := g.Claim(key(5), 1, skip); n != 0 || c != nil {
		t.Fatalf("claim of a cached page = %d, %v", n, c)
	}
}

func TestDeliverKeepsCallUntilForget(t *testing.T) {
	var g Group[pageKey]
	_, c := g.Claim(key(0), 1, nil)
	g.Deliver(key(0), []byte("page"), nil)
	joined, ok := g.Join(key(0))
	if !ok || joined != c {
		t.Fatal("a delivered page left the group before Forget")
	}
	data, err := joined.Wait(context.Background())
	if err != nil || string(data) != "page" {
		t.Fatalf("Wait = %q, %v", data, err)
	}
	g.Forget(key(0))
	if _, ok := g.Join(key(0)); ok {
		t.Fatal("page still in flight after Forget")
	}
}

func TestWaitHonoursContextAndErrors(t *testing.T) {
	var g Group[pageKey]
	_, c := g.Claim(key(0), 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a stalled fetch = %v, want deadline", err)
	}
	boom := errors.New("boom")
	g.Finish(key(0), nil, boom)
	if _, err := c.Wait(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Wait after a failed fetch = %v", err)
	}
}

func TestClaimRunsAlignsAndSplits(t *testing.T) {
	var g Group[pageKey]
	var runs [][2]uint32
	c := g.ClaimRuns(key(6), 21, 4, 8, nil, func(first pageKey, n int) {
		runs = append(runs, [2]uint32{first.Page, uint32(n)})
	})
	if c == nil {
		t.Fatal("no call for the first page")
	}
	// Runs of at most 4 pages that never cross a multiple of 8.
	want := [][2]uint32{{6, 2}, {8, 4}, {12, 4}, {16, 4}, {20, 2}}
	if len(runs) != len(want) {
		t.Fatalf("runs = %v, want %v", runs, want)
	}
	for i := range want {
		if runs[i] != want[i] {
			t.Fatalf("runs = %v, want %v", runs, want)
		}
	}
}

// TestFinishedCallIsGoneWhenWaitersWake: a waiter woken by a failed fetch
// that asks again must fetch anew, not join the failed call (the worker
// refetches a page another reader's refused GET failed this way; before,
// Finish woke the waiters before it forgot the call, and a quick waiter
// found it still there). The waiter here spins on the call, so it looks at
// the group the moment the call is done, racing Finish itself.
func TestFinishedCallIsGoneWhenWaitersWake(t *testing.T) {
	boom := errors.New("boom")
	stale := 0
	for i := 0; i < 2000; i++ {
		var g Group[pageKey]
		_, c := g.Claim(key(0), 1, nil)
		spinning, rejoined := make(chan struct{}), make(chan bool)
		go func() {
			close(spinning)
			for {
				select {
				case <-c.done:
					g.mu.Lock()
					again, ok := g.m[key(0)]
					g.mu.Unlock()
					rejoined <- ok && again == c
					return
				default:
				}
			}
		}()
		<-spinning
		g.Finish(key(0), nil, boom)
		if <-rejoined {
			stale++
		}
	}
	if stale > 0 {
		t.Fatalf("%d of 2000 waiters woken by a failed fetch found that same call still in the group", stale)
	}
}
