package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where metrics are served.
const Path = "/metrics"

// ReadyTimeout bounds one readiness check of /readyz.
const ReadyTimeout = 5 * time.Second

// Ops is what a process serves over plain HTTP for kubelet probes and
// Prometheus: /healthz (liveness: the process answers), /readyz (Ready, if
// set, succeeds within ReadyTimeout) and /metrics (Gatherer). It is the one
// place these paths are defined; every process's --health-addr or
// --metrics-addr, and a worker's health address, serve it.
type Ops struct {
	Gatherer prometheus.Gatherer
	// Ready is the readiness check; nil: ready whenever the process answers.
	Ready func(context.Context) error
}

// Handler serves o's three paths.
func (o Ops) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if o.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
			defer cancel()
			if err := o.Ready(ctx); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET "+Path, Handler(o.Gatherer))
	return mux
}

// Serve serves o on addr (host:port; port 0 picks one) until ctx ends, and
// returns the address it listens on. flag names the address in errors (e.g.
// "--health-addr"). Errors of the listener after that are logged.
func (o Ops) Serve(ctx context.Context, flag, addr string, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", flag, addr, err)
	}
	srv := &http.Server{Handler: o.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health and metrics server stopped", "addr", ln.Addr().String(), "error", err)
		}
	}()
	context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	log.Info("serving health and metrics", "addr", ln.Addr().String(), "paths", "/healthz /readyz "+Path)
	return ln.Addr().String(), nil
}

// Handler serves g's metrics in the Prometheus text format. A collector that
// fails is reported in the scrape and logged by Prometheus; the rest is
// served.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
