package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proc is a hoard process a test started (hoard dev, mount, csi,
// mounter, ...). It is stopped (SIGTERM, then SIGKILL after 10 s) when the
// test ends.
type Proc struct {
	Name   string
	cmd    *exec.Cmd
	logs   *tailBuffer
	exited chan struct{}
}

// StartHoard starts the hoard binary with args and the extra environment
// env (e.g. S3 credentials, never flags).
func StartHoard(t testing.TB, name string, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, logs: &tailBuffer{max: 256 << 10}, exited: make(chan struct{})}
	p.cmd = exec.Command(HoardBinary(t), args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("testenv: start hoard %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.Stop() })
	return p
}

// Stop ends the process: SIGTERM, and SIGKILL if it has not exited within
// 10 s. It waits until the process is gone.
func (p *Proc) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Logs returns the tail of the process's output.
func (p *Proc) Logs() string { return p.logs.String() }

// WaitLog waits until the process's output contains s, at most d.
func (p *Proc) WaitLog(t testing.TB, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(p.Logs(), s) {
		select {
		case <-p.exited:
			t.Fatalf("hoard %s exited before logging %q:\n%s", p.Name, s, p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hoard %s did not log %q within %v:\n%s", p.Name, s, d, p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitHTTP waits until GET url answers 200, at most d.
func (p *Proc) WaitHTTP(t testing.TB, url string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("hoard %s exited before %s answered:\n%s", p.Name, url, p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hoard %s: %s did not answer within %v (%v):\n%s", p.Name, url, d, err, p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Series is one scraped sample: its name, labels and value.
type Series struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Scrape reads the Prometheus text format at url.
func Scrape(ctx context.Context, url string) ([]Series, error) {
	return ScrapeWith(ctx, http.DefaultClient, url)
}

// ScrapeWith is Scrape with an HTTP client of the caller's (a worker's
// data port needs the test's client certificate: WorkerProc.Get).
func ScrapeWith(ctx context.Context, hc *http.Client, url string) ([]Series, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return ParseMetrics(resp.Body)
}

// ParseMetrics parses the Prometheus text format (samples without
// timestamps, as client_golang writes them).
func ParseMetrics(r io.Reader) ([]Series, error) {
	var out []Series
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := Series{Labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			s.Name = line[:i]
			end := strings.LastIndexByte(line, '}')
			if end < i {
				return nil, fmt.Errorf("bad sample %q", line)
			}
			for _, kv := range splitLabels(line[i+1 : end]) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, fmt.Errorf("bad label %q in %q", kv, line)
				}
				uq, err := strconv.Unquote(v)
				if err != nil {
					return nil, fmt.Errorf("bad label value %q in %q", v, line)
				}
				s.Labels[k] = uq
			}
			rest = strings.TrimSpace(line[end+1:])
		} else {
			s.Name, rest, _ = strings.Cut(line, " ")
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("bad value in %q: %v", line, err)
		}
		s.Value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// splitLabels splits a="x",b="y" at the commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// Sum adds the values of the series called name whose labels include
// every label of match.
func Sum(series []Series, name string, match map[string]string) (sum float64, found bool) {
	for _, s := range series {
		if s.Name != name {
			continue
		}
		ok := true
		for k, v := range match {
			if s.Labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			sum += s.Value
			found = true
		}
	}
	return sum, found
}
