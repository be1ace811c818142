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

// TestCheckFetchTimes: --fetch-timeout from 1s to an hour, --fetch-stall
// from 100ms to --fetch-timeout; the error names the flag.
func TestCheckFetchTimes(t *testing.T) {
	for _, c := range []struct {
		stall, timeout time.Duration
		flag           string // in the error; "" for none
	}{
		{20 * time.Second, 2 * time.Minute, ""},
		{time.Second, time.Second, ""},
		{100 * time.Millisecond, time.Hour, ""},
		{20 * time.Second, 0, "--fetch-timeout"},
		{20 * time.Second, 2 * time.Hour, "--fetch-timeout"},
		{0, time.Minute, "--fetch-stall"},
		{-time.Second, time.Minute, "--fetch-stall"},
		{2 * time.Minute, time.Minute, "--fetch-stall"},
	} {
		err := checkFetchTimes(c.stall, c.timeout)
		switch {
		case c.flag == "" && err != nil:
			t.Errorf("stall %v timeout %v: %v", c.stall, c.timeout, err)
		case c.flag != "" && (err == nil || !strings.Contains(err.Error(), c.flag)):
			t.Errorf("stall %v timeout %v: %v, want an error naming %s", c.stall, c.timeout, err, c.flag)
		}
	}
}
