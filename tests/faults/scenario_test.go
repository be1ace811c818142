package faults

import (
	"fmt"
	"testing"
	"time"
)

// Readers of a scenario: 16 readers of the small files through the mount
// of node smallOn, one sequential reader of the shards through smallOn+1;
// faults hit a node that is neither (faultOn).
const (
	smallReaders = 16
	smallOn      = 0
	shardsOn     = 1
	faultOn      = 2
)

// scenario is one fault under load.
type scenario struct {
	fault, done string
	// cold starts the readers on a cluster that has cached nothing (the
	// bucket and disk faults need misses); otherwise the data set is read
	// once first.
	cold bool
	// inject makes the fault; heal (if any) ends it after hold.
	inject, heal func(t *testing.T)
	hold, after  time.Duration
	// slow is how long a read may take before it counts as disturbed (for
	// the recovery time); bound is how long any read may take.
	slow, bound time.Duration
	// failing, if set, says why reads are expected to fail during the
	// fault (the bucket is down, ...); otherwise none may.
	failing string
	// bypassOK is how many bytes the mounts may read from the bucket
	// directly, past the workers (default 0).
	bypassOK float64
	// check, if set, adds the scenario's own checks once readers stopped.
	check func(t *testing.T, r *outcome)
}

// outcome is what a scenario measured.
type outcome struct {
	rec            *recorder
	sum            summary
	t0, t1, end    time.Time // fault, heal, end of reading
	recovery       time.Duration
	healedRecovery time.Duration
}

// warm reads the whole data set once through mount m: every page ends up
// in the workers.
func (c *cluster) warm(t *testing.T, m *mount) summary {
	t.Helper()
	rec := newRecorder()
	c.readAll(t, m, rec)
	s := rec.summary()
	if s.failed > 0 || s.wrong > 0 {
		t.Fatalf("warming through %s: %v; first failures: %v", m.node.Name, s, firstFailures(rec, 3))
	}
	return s
}

func firstFailures(rec *recorder, n int) string {
	fs := sortedFailures(rec.failures())
	out := ""
	for i, f := range fs {
		if i == n {
			break
		}
		out += fmt.Sprintf("\n  at %v on %s: %s: %v", rnd(f.at), f.node, f.key, f.err)
	}
	return out
}

// run runs scenario s on c and adds its row to rep.
func (c *cluster) run(t *testing.T, rep *report, s scenario) *outcome {
	t.Helper()
	if s.hold == 0 {
		s.hold = scaled(20 * time.Second)
	}
	if s.after == 0 {
		s.after = scaled(15 * time.Second)
	}
	if s.slow == 0 {
		s.slow = 2 * time.Second
	}
	if !s.cold {
		start := time.Now()
		w := c.warm(t, c.mounts[smallOn])
		t.Logf("warmed through %s in %v: %v", c.mounts[smallOn].node.Name, time.Since(start).Round(time.Millisecond), w)
	}
	o := &outcome{rec: newRecorder()}
	small := startSmall(c.mounts[smallOn], c.in.data.small, smallReaders, o.rec)
	shards := startShards(c.mounts[shardsOn], c.in.data.shards, 1, o.rec)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			small.stop()
			shards.stop()
		}
	}
	defer stop()
	time.Sleep(scaled(5 * time.Second))
	base := o.rec.summary()
	t.Logf("before the fault: %v", base)
	o.t0 = time.Now()
	s.inject(t)
	time.Sleep(s.hold)
	o.t1 = time.Now()
	if s.heal != nil {
		s.heal(t)
	}
	time.Sleep(s.after)
	o.end = time.Now()
	stop()
	o.sum = o.rec.summary()
	o.recovery = o.rec.recovery(o.t0, o.t1, s.slow)
	if s.heal != nil {
		o.healedRecovery = o.rec.recovery(o.t1, o.end, s.slow)
	}
	t.Logf("%s: %v; disturbed for %v after the fault, %v after the heal", s.fault, o.sum, rnd(o.recovery), rnd(o.healedRecovery))
	if fs := o.rec.failures(); len(fs) > 0 {
		t.Logf("first failures:%s", firstFailures(o.rec, 5))
	}
	if s.failing == "" && o.sum.failed > 0 {
		t.Errorf("%d reads failed, want 0 (the bucket could serve them)", o.sum.failed)
	}
	if o.sum.wrong > 0 {
		t.Errorf("%d wrong bytes read, want 0", o.sum.wrong)
	}
	if s.bound > 0 && o.sum.longest > s.bound {
		t.Errorf("the longest read took %v, more than the bound of %v", rnd(o.sum.longest), s.bound)
	}
	if s.check != nil {
		s.check(t, o)
	}
	// Every read went through the cache: none bypassed it to the bucket.
	var bypassed float64
	for _, m := range c.mounts {
		if m.metrics != "" {
			bypassed += scrape(t, m.metrics, "hoard_mount_bypassed_bytes_total", nil)
		}
	}
	if bypassed > s.bypassOK {
		t.Errorf("the mounts read %.0f bytes from the bucket past the workers", bypassed)
	}
	recovery := fmt.Sprintf("%v", rnd(o.recovery))
	if s.heal != nil {
		recovery += fmt.Sprintf("; %v after healing", rnd(o.healedRecovery))
	}
	rep.add(t, row{fault: s.fault, done: s.done, reads: o.sum.reads, failed: o.sum.failed, wrong: o.sum.wrong,
		longest: o.sum.longest, recovery: recovery, expected: s.failing})
	return o
}

// scaled multiplies d by HOARD_FAULTS_SCALE.
func scaled(d time.Duration) time.Duration { return time.Duration(float64(d) * scale()) }
