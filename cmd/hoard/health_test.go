package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthMux(t *testing.T) {
	var readyErr error
	reg, err := processMetrics("mounter")
	if err != nil {
		t.Fatal(err)
	}
	mux := healthMux(func(context.Context) error { return readyErr }, reg)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz when ready: %d", code)
	}
	readyErr = errors.New("mounter not reachable")
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "mounter not reachable") {
		t.Errorf("/readyz when not ready: %d %q", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz (liveness does not depend on readiness): %d", code)
	}
	// /metrics serves the process's metrics, as --metrics-addr does.
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") ||
		!strings.Contains(body, `hoard_build_info{role="mounter"`) {
		t.Errorf("/metrics: %d %q", code, body)
	}
}
