package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errReconnected ends a watch so that the view is read afresh after the
// connection to etcd came back.
var errReconnected = errors.New("etcd connection restored")

// EtcdWatcher is a Source that follows the membership of one cluster in etcd.
type EtcdWatcher struct {
	cfg EtcdConfig
	cli *clientv3.Client
	log *slog.Logger

	cur atomic.Pointer[published]
	// lapses counts alive-to-not-alive changes of registered workers.
	lapses atomic.Int64

	// Owned by the run goroutine (and by sync before it starts).
	regs  map[string]Member // valid registrations by ID
	alive map[string]bool   // IDs with a liveness key, registered or not
	rev   int64             // revision regs and alive reflect

	reconnected chan struct{} // buffered(1): a fresh read is due

	cancel    context.CancelFunc
	done      sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// published is what Current and Changed hand out, swapped atomically.
type published struct {
	view    View
	changed chan struct{} // closed when replaced by different members
}

// Watch reads the membership of cfg.Cluster and follows it until Close. ctx
// bounds the first read only: Watch fails if etcd cannot be read before ctx
// ends. Afterwards the watcher survives any etcd outage, serving its last view.
func Watch(ctx context.Context, cfg EtcdConfig) (*EtcdWatcher, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	cli, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	w := newEtcdWatcher(cfg, cli)
	if _, err := retry(ctx, w.log, "first read of the membership", func() (struct{}, error) { return struct{}{}, w.sync(ctx) }); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("membership: first read of cluster %q: %w", cfg.Cluster, err)
	}
	w.start(w.rev)
	return w, nil
}

func newEtcdWatcher(cfg EtcdConfig, cli *clientv3.Client) *EtcdWatcher {
	w := &EtcdWatcher{
		cfg:         cfg,
		cli:         cli,
		log:         cfg.Logger.With("cluster", cfg.Cluster),
		regs:        map[string]Member{},
		alive:       map[string]bool{},
		reconnected: make(chan struct{}, 1),
	}
	w.cur.Store(&published{view: View{Registered: []Member{}, Alive: map[string]bool{}}, changed: make(chan struct{})})
	return w
}

// start runs the watch loop from revision rev on, and the connectivity monitor.
func (w *EtcdWatcher) start(rev int64) {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.done.Add(2)
	go func() {
		defer w.done.Done()
		w.run(ctx, rev)
	}()
	go func() {
		defer w.done.Done()
		watchConnectivity(ctx, w.cli, w.connectivityChanged)
	}()
}

// Current returns the latest view without waiting on etcd.
func (w *EtcdWatcher) Current() View { return w.cur.Load().view }

// Changed returns a channel closed when the members or their liveness change.
func (w *EtcdWatcher) Changed() <-chan struct{} { return w.cur.Load().changed }

// Lapses is how many times a registered worker's liveness went away while
// the watcher followed the cluster.
func (w *EtcdWatcher) Lapses() int64 { return w.lapses.Load() }

// Close stops following etcd. Current keeps returning the last view.
func (w *EtcdWatcher) Close() error {
	w.closeOnce.Do(func() {
		if w.cancel != nil {
			w.cancel()
		}
		w.done.Wait()
		if err := w.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			w.closeErr = fmt.Errorf("membership: close etcd client: %w", err)
		}
	})
	return w.closeErr
}

func (w *EtcdWatcher) connectivityChanged(up bool) {
	if !up {
		w.log.Warn("membership: etcd connection lost; serving last view", "rev", w.Current().Rev)
		return
	}
	w.log.Info("membership: etcd connection restored; re-reading membership")
	select {
	case w.reconnected <- struct{}{}:
	default:
	}
}

// run follows the prefix from revision rev, re-reading it whenever the watch
// breaks, until ctx ends.
func (w *EtcdWatcher) run(ctx context.Context, rev int64) {
	delay := newBackOff()
	failing := false // reads are failing; logged once
	for {
		started := time.Now()
		err := w.follow(ctx, rev)
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, errReconnected) {
			w.log.Info("membership: watch interrupted; re-reading membership", "rev", w.rev, "err", err)
		}
		if time.Since(started) > 10*maxRetry {
			delay.Reset()
		}
		for {
			if !sleep(ctx, delay.NextBackOff()) {
				return
			}
			err := w.sync(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			if !failing {
				failing = true
				w.log.Warn("membership: cannot read membership from etcd; serving last view", "rev", w.rev, "err", err)
			}
		}
		if failing {
			failing = false
			w.log.Info("membership: membership read again", "rev", w.rev)
		}
		rev = w.rev
	}
}

// follow applies the changes after revision rev until the watch ends, and
// returns why it ended.
func (w *EtcdWatcher) follow(ctx context.Context, rev int64) error {
	// Drop a reconnection that the read before this watch already covers.
	select {
	case <-w.reconnected:
	default:
	}
	// Require a leader, so that a member cut off from its cluster ends the
	// watch instead of keeping it open and silent.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := w.cli.Watch(wctx, w.cfg.prefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.reconnected:
			return errReconnected
		case resp, ok := <-wch:
			if !ok {
				return errors.New("watch channel closed")
			}
			if err := resp.Err(); err != nil {
				return err
			}
			for _, ev := range resp.Events {
				w.apply(ev)
			}
			w.rev = max(w.rev, resp.Header.Revision)
			if len(resp.Events) > 0 {
				w.publish(false)
			}
		}
	}
}

// sync replaces the state by a fresh read of the whole prefix.
func (w *EtcdWatcher) sync(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, w.cfg.DialTimeout)
	defer cancel()
	resp, err := w.cli.Get(rctx, w.cfg.prefix(), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	first := w.rev == 0
	clear(w.regs)
	clear(w.alive)
	for _, kv := range resp.Kvs {
		w.apply(&clientv3.Event{Type: clientv3.EventTypePut, Kv: kv})
	}
	w.rev = resp.Header.Revision
	w.publish(first)
	return nil
}

// apply records one change of a key under the prefix.
func (w *EtcdWatcher) apply(ev *clientv3.Event) {
	key := string(ev.Kv.Key)
	put := ev.Type == mvccpb.PUT
	switch {
	case strings.HasPrefix(key, w.cfg.workersPrefix()):
		id := strings.TrimPrefix(key, w.cfg.workersPrefix())
		if !put {
			delete(w.regs, id)
			return
		}
		m, err := decodeMember(id, ev.Kv.Value)
		if err != nil {
			// Treated as unregistered until a valid registration arrives.
			w.log.Warn("membership: ignoring invalid registration", "key", key, "err", err)
			delete(w.regs, id)
			return
		}
		w.regs[id] = m
	case strings.HasPrefix(key, w.cfg.alivePrefix()):
		id := strings.TrimPrefix(key, w.cfg.alivePrefix())
		if put {
			w.alive[id] = true
		} else {
			delete(w.alive, id)
		}
	}
}

// publish makes the state the current view, signals Changed if the members
// or their liveness differ, and logs each worker's change (or, on the first
// read, a summary).
func (w *EtcdWatcher) publish(first bool) {
	v := View{Registered: make([]Member, 0, len(w.regs)), Alive: map[string]bool{}, Rev: w.rev}
	for id, m := range w.regs {
		v.Registered = append(v.Registered, m)
		if w.alive[id] {
			v.Alive[id] = true
		}
	}
	slices.SortFunc(v.Registered, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })

	old := w.cur.Load()
	if old.view.sameMembers(v) {
		w.cur.Store(&published{view: v, changed: old.changed})
		return
	}
	w.cur.Store(&published{view: v, changed: make(chan struct{})})
	close(old.changed)

	if first {
		w.log.Info("membership: initial view", "registered", len(v.Registered), "alive", len(v.Alive), "rev", v.Rev)
		return
	}
	w.logDiff(old.view, v)
}

func (w *EtcdWatcher) logDiff(old, cur View) {
	was := make(map[string]Member, len(old.Registered))
	for _, m := range old.Registered {
		was[m.ID] = m
	}
	for _, m := range cur.Registered {
		prev, known := was[m.ID]
		delete(was, m.ID)
		switch {
		case !known:
			w.log.Info("membership: worker registered", "worker", m.ID, "addr", m.Addr, "alive", cur.Alive[m.ID], "rev", cur.Rev)
		case prev != m:
			w.log.Info("membership: worker registration changed", "worker", m.ID, "addr", m.Addr, "weight", m.Weight, "capacity_bytes", m.Capacity, "rev", cur.Rev)
		}
		switch {
		case known && !old.Alive[m.ID] && cur.Alive[m.ID]:
			w.log.Info("membership: worker up", "worker", m.ID, "rev", cur.Rev)
		case known && old.Alive[m.ID] && !cur.Alive[m.ID]:
			w.lapses.Add(1)
			w.log.Warn("membership: worker down", "worker", m.ID, "rev", cur.Rev)
		}
	}
	for id := range was {
		w.log.Info("membership: worker deregistered", "worker", id, "rev", cur.Rev)
	}
}
