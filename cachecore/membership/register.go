package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Registration is a worker's presence in etcd: its permanent registration and
// its liveness lease, renewed until Close.
type Registration struct {
	cfg    EtcdConfig
	member Member
	value  string // the registration's JSON
	cli    *clientv3.Client
	log    *slog.Logger

	mu    sync.Mutex
	lease clientv3.LeaseID // current lease; changes when a lost lease is replaced

	stats RegistrationStats

	cancel    context.CancelFunc
	done      sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Register writes m's registration (replacing any previous one under m.ID) and
// its liveness key, and keeps the liveness lease alive until Close. ctx bounds
// the first registration only; Register retries it, with backoff, until it
// succeeds or ctx ends. Afterwards the registration survives any etcd outage:
// a lost lease is replaced and both keys are written again.
func Register(ctx context.Context, cfg EtcdConfig, m Member) (*Registration, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	m, err = m.normalize()
	if err != nil {
		return nil, err
	}
	value, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("membership: encode registration of %q: %w", m.ID, err)
	}
	cli, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	r := &Registration{
		cfg:    cfg,
		member: m,
		value:  string(value),
		cli:    cli,
		log:    cfg.Logger.With("cluster", cfg.Cluster, "worker", m.ID),
	}
	runCtx, cancel := context.WithCancel(context.Background())
	lease, ka, stopKA, _, err := r.establish(ctx, runCtx)
	if err != nil {
		cancel()
		_ = cli.Close()
		return nil, fmt.Errorf("membership: register %q in cluster %q: %w", m.ID, cfg.Cluster, err)
	}
	r.lease = lease
	r.cancel = cancel
	r.log.Info("membership: registered", "addr", m.Addr, "lease", int64(lease), "ttl", cfg.TTL)

	r.done.Add(2)
	go func() {
		defer r.done.Done()
		r.run(runCtx, ka, stopKA)
	}()
	go func() {
		defer r.done.Done()
		watchConnectivity(runCtx, cli, func(up bool) {
			if up {
				r.log.Info("membership: etcd connection restored")
			} else {
				r.log.Warn("membership: etcd connection lost; keeping lease alive when it returns")
			}
		})
	}()
	return r, nil
}

// RegistrationStats counts what happened to a worker's liveness lease.
type RegistrationStats struct {
	Renewals atomic.Int64 // keep-alive answers from etcd
	Lapses   atomic.Int64 // leases lost and replaced by a new registration
}

// Stats returns the registration's counters.
func (r *Registration) Stats() *RegistrationStats { return &r.stats }

// Member returns the registered member, with defaults filled in.
func (r *Registration) Member() Member { return r.member }

// Close stops renewing the lease and revokes it, so the worker is no longer
// alive at once; its registration stays. If etcd cannot be reached, Close
// gives up after the TTL or DialTimeout, whichever is shorter; the lease
// expires on its own.
func (r *Registration) Close() error {
	r.closeOnce.Do(func() {
		r.stop()
		ctx, cancel := context.WithTimeout(context.Background(), min(r.cfg.TTL, r.cfg.DialTimeout))
		_, err := r.cli.Revoke(ctx, r.currentLease())
		cancel()
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			r.closeErr = fmt.Errorf("membership: revoke lease of %q: %w", r.member.ID, err)
			r.log.Warn("membership: cannot revoke liveness lease; it expires within its TTL", "lease", int64(r.currentLease()), "err", err)
		} else {
			r.log.Info("membership: liveness revoked", "lease", int64(r.currentLease()))
		}
		if err := r.cli.Close(); err != nil && !errors.Is(err, context.Canceled) && r.closeErr == nil {
			r.closeErr = fmt.Errorf("membership: close etcd client: %w", err)
		}
	})
	return r.closeErr
}

// stop ends the background work without touching etcd.
func (r *Registration) stop() {
	r.cancel()
	r.done.Wait()
}

func (r *Registration) currentLease() clientv3.LeaseID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lease
}

// run renews the lease; when it is lost it registers again, until ctx ends.
func (r *Registration) run(ctx context.Context, ka <-chan *clientv3.LeaseKeepAliveResponse, stopKA context.CancelFunc) {
	defer func() { stopKA() }()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ka:
			if ok {
				r.stats.Renewals.Add(1)
				continue
			}
		}
		if ctx.Err() != nil {
			return // closing
		}
		stopKA()
		old := r.currentLease()
		newKA, newStop, err := r.resume(ctx, old)
		if err == nil {
			// The keep-alives went unanswered for a TTL (this process or
			// etcd was starved) but etcd kept the lease: nothing changed
			// for anyone watching, and nothing is written.
			r.log.Info("membership: liveness lease kept after a stall", "lease", int64(old))
			ka, stopKA = newKA, newStop
			continue
		}
		if ctx.Err() != nil {
			return
		}
		r.stats.Lapses.Add(1)
		lost := time.Now()
		r.log.Warn("membership: liveness lease lost; registering again", "lease", int64(old), "err", err)
		lease, newKA, newStop, attempts, err := r.establish(ctx, ctx)
		if err != nil {
			return // ctx ended
		}
		r.mu.Lock()
		r.lease = lease
		r.mu.Unlock()
		ka, stopKA = newKA, newStop
		// The old lease may still exist (etcd kept it across a restart); its
		// key has moved to the new one, so revoking it only tidies up.
		rctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
		_, _ = r.cli.Revoke(rctx, old)
		cancel()
		r.log.Info("membership: registered again", "lease", int64(lease), "after", time.Since(lost).Round(time.Millisecond), "attempts", attempts)
	}
}

// resume renews lease once and, if etcd still holds it, keeps it alive
// again under ctx. The etcd client gives a lease up when no renewal was
// answered within its TTL, which a starved process or a slow etcd causes
// without etcd having let the lease expire; the lease and the liveness key
// on it are then still there.
func (r *Registration) resume(ctx context.Context, lease clientv3.LeaseID) (<-chan *clientv3.LeaseKeepAliveResponse, context.CancelFunc, error) {
	octx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	resp, err := r.cli.KeepAliveOnce(octx, lease)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	if resp.TTL <= 0 {
		return nil, nil, rpctypes.ErrLeaseNotFound
	}
	r.stats.Renewals.Add(1)
	kctx, stop := context.WithCancel(ctx)
	ka, err := r.cli.KeepAlive(kctx, lease)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return ka, stop, nil
}

// establish grants a lease, writes the registration and the liveness key in one
// transaction and starts renewing the lease under keepCtx. It retries with
// backoff until it succeeds or ctx ends.
func (r *Registration) establish(ctx, keepCtx context.Context) (clientv3.LeaseID, <-chan *clientv3.LeaseKeepAliveResponse, context.CancelFunc, int, error) {
	type kept struct {
		lease clientv3.LeaseID
		ka    <-chan *clientv3.LeaseKeepAliveResponse
		stop  context.CancelFunc
	}
	attempts := 0
	k, err := retry(ctx, r.log, "register", func() (kept, error) {
		attempts++
		lease, err := r.put(ctx)
		if err == nil {
			kctx, stop := context.WithCancel(keepCtx)
			var ka <-chan *clientv3.LeaseKeepAliveResponse
			if ka, err = r.cli.KeepAlive(kctx, lease); err == nil {
				return kept{lease, ka, stop}, nil
			}
			stop()
		}
		r.log.Debug("membership: registration attempt failed", "attempt", attempts, "err", err)
		return kept{}, err
	})
	return k.lease, k.ka, k.stop, attempts, err
}

// put grants a lease and writes both keys, each request bounded by
// DialTimeout.
func (r *Registration) put(ctx context.Context) (clientv3.LeaseID, error) {
	gctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	g, err := r.cli.Grant(gctx, r.cfg.ttlSeconds())
	cancel()
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	tctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	defer cancel()
	_, err = r.cli.Txn(tctx).Then(
		clientv3.OpPut(r.cfg.workerKey(r.member.ID), r.value),
		clientv3.OpPut(r.cfg.aliveKey(r.member.ID), "", clientv3.WithLease(g.ID)),
	).Commit()
	if err != nil {
		return 0, fmt.Errorf("write keys: %w", err)
	}
	return g.ID, nil
}

// Deregister removes the registration and liveness key of worker id: the
// decommissioning of a worker that is gone for good. It is meant for stopped
// workers: a running one writes its registration again if it ever loses its
// lease. Removing a worker that is not registered is not an error.
func Deregister(ctx context.Context, cfg EtcdConfig, id string) error {
	cfg, err := cfg.normalize()
	if err != nil {
		return err
	}
	if err := checkName("member ID", id); err != nil {
		return err
	}
	cli, err := newClient(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	_, err = cli.Txn(ctx).Then(
		clientv3.OpDelete(cfg.workerKey(id)),
		clientv3.OpDelete(cfg.aliveKey(id)),
	).Commit()
	if err != nil {
		return fmt.Errorf("membership: deregister %q from cluster %q: %w", id, cfg.Cluster, err)
	}
	cfg.Logger.Info("membership: registration removed", "cluster", cfg.Cluster, "worker", id)
	return nil
}
