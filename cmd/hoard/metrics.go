package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"hoard.dev/hoard/internal/buildinfo"
	"hoard.dev/hoard/internal/metrics"
)

// metricsFlag is --metrics-addr, which every long-running command has.
type metricsFlag struct{ addr string }

func (f *metricsFlag) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.addr, "metrics-addr", "",
		"serve Prometheus metrics at http://ADDR/metrics, e.g. :9810 or 127.0.0.1:9810 (default: not served; see docs/metrics.md)")
}

// processMetrics returns the registry of a process of role: its
// collectors cs, the Go runtime's and hoard_build_info. --metrics-addr and
// --health-addr's /metrics serve it.
func processMetrics(role string, cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := metrics.NewRegistry(role, buildinfo.Version)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// serve serves g until ctx ends, if --metrics-addr was given.
func (f *metricsFlag) serve(ctx context.Context, g prometheus.Gatherer) error {
	if f.addr == "" {
		return nil
	}
	_, err := metrics.Serve(ctx, f.addr, g, slog.Default())
	return err
}

// serveNew serves the metrics of role, made of cs, if --metrics-addr was
// given.
func (f *metricsFlag) serveNew(ctx context.Context, role string, cs ...prometheus.Collector) error {
	if f.addr == "" {
		return nil
	}
	reg, err := processMetrics(role, cs...)
	if err != nil {
		return err
	}
	return f.serve(ctx, reg)
}
