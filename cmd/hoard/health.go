package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hoard.dev/hoard/internal/metrics"
)

// healthTimeout bounds one readiness check.
const healthTimeout = 5 * time.Second

// serveHealth serves, on addr, /healthz (liveness: the process answers),
// /readyz (ready runs and succeeds within healthTimeout) and /metrics (g:
// the same metrics as --metrics-addr), for kubelet probes and Prometheus,
// until ctx ends. Empty addr serves nothing.
func serveHealth(ctx context.Context, addr string, ready func(context.Context) error, g prometheus.Gatherer) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--health-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: healthMux(ready, g), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("health server stopped", "addr", addr, "error", err)
		}
	}()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return nil
}

func healthMux(ready func(context.Context) error, g prometheus.Gatherer) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		if ready != nil {
			if err := ready(ctx); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET "+metrics.Path, metrics.Handler(g))
	return mux
}
