package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"hoard.dev/hoard/internal/buildinfo"
	"hoard.dev/hoard/internal/metrics"
)

// opsFlag is the one plain-HTTP address of a long-running process: /healthz,
// /readyz and /metrics (metrics.Ops). The processes the kubelet probes
// (worker, mounter, csi) name it --health-addr and take --metrics-addr,
// deprecated, as another name for it; the others (mount, coordinator, dev)
// name it --metrics-addr.
type opsFlag struct {
	name   string // the flag, as errors name it
	addr   string
	legacy string // --metrics-addr where the flag is --health-addr
}

// addMetrics adds --metrics-addr.
func (f *opsFlag) addMetrics(fs *pflag.FlagSet) {
	f.name = "--metrics-addr"
	fs.StringVar(&f.addr, "metrics-addr", "",
		"serve Prometheus metrics at http://ADDR/metrics (and /healthz, /readyz), e.g. :9810 or 127.0.0.1:9810 (default: not served; see docs/metrics.md)")
}

// addHealth adds --health-addr, whose /readyz checks ready (as the help
// says), e.g. :9810, and --metrics-addr as its deprecated other name.
func (f *opsFlag) addHealth(fs *pflag.FlagSet, ready, example string) {
	f.name = "--health-addr"
	fs.StringVar(&f.addr, "health-addr", "", fmt.Sprintf(
		"serve /healthz, /readyz (%s) and /metrics (Prometheus) over plain HTTP on this address, e.g. %s (default: not served)", ready, example))
	fs.StringVar(&f.legacy, "metrics-addr", "", "the same as --health-addr")
	fs.MarkDeprecated("metrics-addr", "use --health-addr, which serves /metrics too")
}

// address is the address to serve on ("" for none): the flag, or its
// deprecated other name.
func (f *opsFlag) address() (string, error) {
	switch {
	case f.legacy == "":
		return f.addr, nil
	case f.addr == "" || f.addr == f.legacy:
		return f.legacy, nil
	}
	return "", fmt.Errorf("--metrics-addr %s and --health-addr %s name the same one server (/healthz, /readyz, /metrics): give only --health-addr", f.legacy, f.addr)
}

// processMetrics returns the registry of a process of role: its
// collectors cs, the Go runtime's and hoard_build_info, which opsFlag's
// /metrics serves.
func processMetrics(role string, cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := metrics.NewRegistry(role, buildinfo.Version)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// serve serves g's metrics, with ready as the readiness check (nil: ready
// whenever the process answers), until ctx ends, if an address was given.
func (f *opsFlag) serve(ctx context.Context, g prometheus.Gatherer, ready func(context.Context) error) error {
	addr, err := f.address()
	if err != nil || addr == "" {
		return err
	}
	_, err = metrics.Ops{Gatherer: g, Ready: ready}.Serve(ctx, f.name, addr, slog.Default())
	return err
}

// serveNew serves the metrics of role, made of cs, if an address was given.
func (f *opsFlag) serveNew(ctx context.Context, role string, cs ...prometheus.Collector) error {
	if f.addr == "" {
		return nil
	}
	reg, err := processMetrics(role, cs...)
	if err != nil {
		return err
	}
	return f.serve(ctx, reg, nil)
}
