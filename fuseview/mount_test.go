package fuseview

import (
	"testing"
	"time"
)

func TestIsMagicFd(t *testing.T) {
	for in, want := range map[string]bool{"/dev/fd/3": true, "/dev/fd/17": true, "/dev/fd/": false, "/dev/fd/x": false, "/mnt/data": false} {
		if got := isMagicFd(in); got != want {
			t.Errorf("isMagicFd(%q) = %t, want %t", in, got, want)
		}
	}
}

func TestKernelTimeouts(t *testing.T) {
	for _, tc := range []struct {
		opt      Options
		entry    time.Duration // cap of positive entries
		negative time.Duration // 0: none
	}{
		{Options{}, time.Hour, time.Minute},
		{Options{EntryTimeout: 10 * time.Second}, 10 * time.Second, 10 * time.Second},
		{Options{EntryTimeout: -1}, 0, 0},
		{Options{MetadataTTL: -1}, 0, 0},
		{Options{NegativeTTL: -1}, time.Hour, 0},
	} {
		o := tc.opt.withDefaults()
		if got := o.kernelLimit(o.EntryTimeout); got != tc.entry {
			t.Errorf("%+v: entry cap %v, want %v", tc.opt, got, tc.entry)
		}
		got := time.Duration(0)
		if d := negativeTimeout(o); d != nil {
			got = *d
		}
		if got != tc.negative {
			t.Errorf("%+v: negative timeout %v, want %v", tc.opt, got, tc.negative)
		}
	}
}
