package main

import (
	"strings"
	"testing"
	"time"
)

// TestCheckAuthTimes: --auth-ttl must be above 0 and --auth-grace not
// negative, both at most a day; the error names the flag.
func TestCheckAuthTimes(t *testing.T) {
	for _, c := range []struct {
		ttl, grace time.Duration
		flag       string // in the error; "" for none
	}{
		{time.Minute, 10 * time.Minute, ""},
		{time.Second, 0, ""},
		{24 * time.Hour, 24 * time.Hour, ""},
		{0, time.Minute, "--auth-ttl"},
		{-time.Second, time.Minute, "--auth-ttl"},
		{25 * time.Hour, time.Minute, "--auth-ttl"},
		{time.Minute, -time.Second, "--auth-grace"},
		{time.Minute, 48 * time.Hour, "--auth-grace"},
	} {
		err := checkAuthTimes(c.ttl, c.grace)
		switch {
		case c.flag == "" && err != nil:
			t.Errorf("ttl %v grace %v: %v", c.ttl, c.grace, err)
		case c.flag != "" && (err == nil || !strings.Contains(err.Error(), c.flag)):
			t.Errorf("ttl %v grace %v: %v, want an error naming %s", c.ttl, c.grace, err, c.flag)
		}
	}
}
