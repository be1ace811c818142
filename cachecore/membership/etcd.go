package membership

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
)

// Defaults for EtcdConfig.
const (
	// DefaultTTL is long enough for a worker on a starved node (or an etcd
	// behind a slow disk) to keep its lease: a lease that lapses moves the
	// worker's chunks to others, which fetch them again. Clients do not
	// wait for it to notice a dead worker: one that refuses or does not
	// answer is skipped at once (cachecore/client).
	DefaultTTL         = 10 * time.Second
	DefaultDialTimeout = 5 * time.Second
)

// Retry pacing for re-reads, re-registrations and reconnects.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 2 * time.Second
)

// EtcdConfig says where the membership of one cache cluster lives.
type EtcdConfig struct {
	// Endpoints are etcd client URLs, e.g. "http://10.0.0.1:2379".
	Endpoints []string
	// Cluster names the cache cluster; keys live under /hoard/<Cluster>/.
	Cluster string
	// DialTimeout bounds each request to etcd (default 5 s). Connecting
	// itself never blocks: the client reconnects in the background.
	DialTimeout time.Duration
	// TTL of a worker's liveness lease (default 10 s), rounded up to whole
	// seconds. etcd may raise it to its minimum (2 s with default election
	// timing).
	TTL time.Duration
	// TLS, if set, secures the connection to etcd (https:// endpoints),
	// with a client certificate if it has one.
	TLS *tls.Config
	// Username and Password authenticate to etcd (its RBAC) when set. The
	// password is never logged.
	Username, Password string
	// Logger receives state changes; nil means slog.Default().
	Logger *slog.Logger
}

// normalize checks c and fills in defaults.
func (c EtcdConfig) normalize() (EtcdConfig, error) {
	if len(c.Endpoints) == 0 {
		return c, errors.New("membership: no etcd endpoints")
	}
	for _, ep := range c.Endpoints {
		if strings.TrimSpace(ep) == "" {
			return c, errors.New("membership: empty etcd endpoint")
		}
	}
	if err := checkName("cluster name", c.Cluster); err != nil {
		return c, err
	}
	switch {
	case c.DialTimeout < 0:
		return c, fmt.Errorf("membership: negative dial timeout %s", c.DialTimeout)
	case c.DialTimeout == 0:
		c.DialTimeout = DefaultDialTimeout
	}
	switch {
	case c.TTL < 0:
		return c, fmt.Errorf("membership: negative TTL %s", c.TTL)
	case c.TTL == 0:
		c.TTL = DefaultTTL
	}
	c.TTL = time.Duration(c.ttlSeconds()) * time.Second
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Endpoints = append([]string(nil), c.Endpoints...)
	return c, nil
}

// ttlSeconds is the TTL rounded up to whole seconds, as leases are granted.
func (c EtcdConfig) ttlSeconds() int64 {
	return int64((c.TTL + time.Second - 1) / time.Second)
}

func (c EtcdConfig) prefix() string             { return "/hoard/" + c.Cluster + "/" }
func (c EtcdConfig) workersPrefix() string      { return c.prefix() + "workers/" }
func (c EtcdConfig) alivePrefix() string        { return c.prefix() + "alive/" }
func (c EtcdConfig) workerKey(id string) string { return c.workersPrefix() + id }
func (c EtcdConfig) aliveKey(id string) string  { return c.alivePrefix() + id }

// newClient returns a client that connects in the background and reconnects
// quickly (at most maxRetry apart) once etcd is back. The etcd client's own
// zap logging is off: it logs every retry, and this package logs the state
// changes that matter.
func newClient(c EtcdConfig) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: c.DialTimeout,
		TLS:         c.TLS,
		Username:    c.Username,
		Password:    c.Password,
		// Detect a dead peer on an idle-looking stream (a watch with no
		// events). etcd's server rejects pings more often than every 5 s.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: c.DialTimeout,
		Logger:               zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay:  minRetry,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   maxRetry,
			},
			MinConnectTimeout: c.DialTimeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("membership: etcd client for %v: %w", c.Endpoints, err)
	}
	return cli, nil
}

// newBackOff paces re-reads, re-registrations and reconnects: exponential
// from minRetry up to maxRetry, each wait drawn within ±50% of the step.
func newBackOff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{
		InitialInterval: minRetry, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: maxRetry,
	}
}

// retryWarnEvery is how often retry says that failures go on.
const retryWarnEvery = 30 * time.Second

// retry runs op with newBackOff until it succeeds or ctx ends; then it
// returns op's last error rather than only ctx's. It warns on log that it
// is still trying to do what (at the first failure, then every
// retryWarnEvery), so that a process waiting for an unreachable etcd says
// so instead of hanging silently.
func retry[T any](ctx context.Context, log *slog.Logger, what string, op func() (T, error)) (T, error) {
	var last error
	var warned time.Time
	start := time.Now()
	v, err := backoff.Retry(ctx, func() (T, error) {
		v, err := op()
		last = err
		if err != nil && time.Since(warned) >= retryWarnEvery {
			warned = time.Now()
			log.Warn("membership: etcd does not answer yet; retrying", "doing", what, "for", time.Since(start).Round(time.Second), "err", err)
		}
		return v, err
	}, backoff.WithBackOff(newBackOff()), backoff.WithMaxElapsedTime(0))
	if err != nil && last != nil {
		err = fmt.Errorf("%w (%w)", last, err)
	}
	return v, err
}

// sleep waits d or until ctx is done, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// watchConnectivity calls onChange(false) when cli's connection leaves the
// ready state after having been ready, and onChange(true) when it is ready
// again, until ctx is done. Flapping between connecting and failing while etcd
// is away is not reported.
func watchConnectivity(ctx context.Context, cli *clientv3.Client, onChange func(up bool)) {
	conn := cli.ActiveConnection()
	state := conn.GetState()
	everUp, up := state == connectivity.Ready, state == connectivity.Ready
	for conn.WaitForStateChange(ctx, state) {
		state = conn.GetState()
		switch {
		case state == connectivity.Ready && !up:
			up = true
			if everUp {
				onChange(true)
			}
			everUp = true
		case state != connectivity.Ready && state != connectivity.Shutdown && up:
			up = false
			onChange(false)
		}
	}
}
