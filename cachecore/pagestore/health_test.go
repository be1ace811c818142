package pagestore

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"hoard.dev/hoard/tests/testenv"
)

// TestDiskFaults runs a store on a real disk that fills up, turns read-only
// and dies: the store degrades (Puts refused at once with ErrDegraded,
// cached pages served while they can be read), says why in Health, never
// returns wrong bytes, and caches again when the disk takes writes again
// (a full one; a read-only or dead one stays so until it is mounted again).
func TestDiskFaults(t *testing.T) {
	d := testenv.NewDisk(t, filepath.Join(t.TempDir(), "disk"), testenv.DiskOptions{Size: 32 << 20})
	const retry = 100 * time.Millisecond
	// The capacity is the disk's size ten times over: the disk, not the
	// budget, runs out.
	s, err := Open(Config{Dir: filepath.Join(d.Dir, "pages"), Capacity: 320 << 20, PageSize: testPage, FaultRetry: retry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for p := 0; p < 4; p++ {
		if err := s.Put(key(1, p), pageData(1, p, testPage)); err != nil {
			t.Fatalf("put on a healthy disk: %v", err)
		}
	}
	cachedStillServed := func(t *testing.T) {
		t.Helper()
		for p := 0; p < 4; p++ {
			mustGet(t, s, key(1, p), pageData(1, p, testPage))
		}
	}
	expectFault := func(t *testing.T, want Fault) {
		t.Helper()
		if h := s.Health(); h.Fault != want || (want != FaultNone && h.Err == nil) {
			t.Fatalf("health %v (%v), want %v", h.Fault, h.Err, want)
		}
	}
	// putUntilFault puts new pages until one fails, at most n.
	next := 100
	putUntilFault := func(t *testing.T) error {
		t.Helper()
		for range 1000 {
			next++
			if err := s.Put(key(2, next), pageData(2, next, testPage)); err != nil {
				return err
			}
		}
		t.Fatal("1000 pages put on a disk that should refuse them")
		return nil
	}
	// bypassed checks that a Put while degraded is refused without the disk.
	bypassed := func(t *testing.T) {
		t.Helper()
		before := s.Stats().Bypassed.Load()
		start := time.Now()
		if err := s.Put(key(3, next), pageData(3, next, testPage)); !errors.Is(err, ErrDegraded) {
			t.Fatalf("put while degraded: %v, want ErrDegraded", err)
		}
		if s.Stats().Bypassed.Load() != before+1 || time.Since(start) > 50*time.Millisecond {
			t.Errorf("a put while degraded touched the disk (bypassed %d -> %d, %v)", before, s.Stats().Bypassed.Load(), time.Since(start))
		}
	}
	// recovers waits for the next probe and checks a Put goes through.
	recovers := func(t *testing.T) {
		t.Helper()
		time.Sleep(retry + 20*time.Millisecond)
		next++
		if err := s.Put(key(4, next), pageData(4, next, testPage)); err != nil {
			t.Fatalf("put after the disk recovered: %v", err)
		}
		expectFault(t, FaultNone)
		mustGet(t, s, key(4, next), pageData(4, next, testPage))
	}

	t.Run("full", func(t *testing.T) {
		if err := d.Fill(0); err != nil {
			t.Fatal(err)
		}
		err := putUntilFault(t)
		if !errors.Is(err, ErrDegraded) {
			t.Fatalf("put on a full disk: %v, want ErrDegraded", err)
		}
		expectFault(t, FaultFull)
		bypassed(t)
		cachedStillServed(t)
		if err := d.Unfill(); err != nil {
			t.Fatal(err)
		}
		recovers(t)
	})
	t.Run("read-only", func(t *testing.T) {
		if err := d.SetReadOnly(); err != nil {
			t.Fatal(err)
		}
		putUntilFault(t)
		expectFault(t, FaultReadOnly)
		bypassed(t)
		cachedStillServed(t)
		time.Sleep(retry + 20*time.Millisecond)
		if err := s.Put(key(5, 1), pageData(5, 1, testPage)); !errors.Is(err, ErrDegraded) {
			t.Errorf("probe write on a read-only disk: %v, want ErrDegraded", err)
		}
		expectFault(t, FaultReadOnly)
		cachedStillServed(t)
	})
	t.Run("I/O errors", func(t *testing.T) {
		// A read-only store that then fails reads gets the worse fault.
		if err := d.Fail(); err != nil {
			t.Fatal(err)
		}
		buf := s.NewBuffer()
		if n, ok := s.Get(key(1, 0), buf); ok {
			t.Fatalf("get on a dead disk returned %d bytes", n)
		}
		expectFault(t, FaultIO)
		if s.Stats().ReadErrors.Load() == 0 {
			t.Error("no read error counted")
		}
		if s.Contains(key(1, 1)) {
			t.Error("Contains says a page is cached while the disk fails reads")
		}
		// Until the next probe the disk is not read at all.
		before := s.Stats().ReadErrors.Load()
		for p := 0; p < 4; p++ {
			if _, ok := s.Get(key(1, p), buf); ok {
				t.Fatal("get on a dead disk hit")
			}
		}
		if got := s.Stats().ReadErrors.Load(); got != before {
			t.Errorf("%d more reads of a dead disk before the probe was due", got-before)
		}
		bypassed(t)
		time.Sleep(retry + 20*time.Millisecond)
		if err := s.Put(key(5, 1), pageData(5, 1, testPage)); !errors.Is(err, ErrDegraded) {
			t.Errorf("probe write on a dead disk: %v, want ErrDegraded", err)
		}
		expectFault(t, FaultIO)
		// Whatever was read, nothing wrong came back.
		if n, ok := s.Get(key(1, 2), buf); ok && !bytes.Equal(buf[:n], pageData(1, 2, testPage)) {
			t.Fatal("wrong bytes from a dead disk")
		}
	})
}
