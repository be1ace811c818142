package node

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v5"

	"hoard.dev/hoard/fusefd"
)

// Bounds of the restore loop.
const (
	// maxRestoresPerPass bounds the volumes one pass mounts again; the
	// others wait for the next pass.
	maxRestoresPerPass = 8
	// restoreTimeout bounds the restore of one volume.
	restoreTimeout = 2 * time.Minute
	// maxBackoff bounds the wait between failed restores of one volume.
	maxBackoff = time.Minute
	// checkTimeout bounds the look at one staging mount.
	checkTimeout = 5 * time.Second
)

// restoreStatus is the restore loop's memory of one volume's failures.
type restoreStatus struct {
	failures int
	backoff  *backoff.ExponentialBackOff // from 2 intervals, doubling, up to maxBackoff
	next     time.Time
	lastErr  string
}

// Run runs the restore loop until ctx is done: every RestoreInterval it
// looks at each recorded volume (skipping those a CSI call is working on)
// and
//
//   - staging mount Broken (its FUSE server is gone: the mounter died, or
//     dropped the session), or NotMounted in the middle of a restore: when
//     the mounter answers a ping, unmount it lazily, mount a new FUSE
//     connection, hand it to the mounter, then bind every recorded target
//     again (bindTarget). Failures are retried with exponential backoff (up
//     to a minute); while the mounter does not answer nothing is touched.
//   - staging mount Healthy: make sure every recorded target that shows a
//     dead hoard mount shows the live one (a restore interrupted between
//     staging and targets, a plugin that died in between).
//   - NotMounted otherwise: nothing (the CO stages or unstages it).
//
// One pass restores at most maxRestoresPerPass volumes; looking at a volume
// is one statfs (bounded by 5 s) and a read of /proc/self/mountinfo.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.RestoreInterval)
	defer t.Stop()
	for {
		s.restorePass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass is what one restore pass knows: the mounts when it began (read once:
// on a busy node mountinfo has thousands of lines) and the mounter.
type pass struct {
	mounts     []mountEntry
	restored   int
	mounterUp  bool
	mounterErr error
	pinged     bool
}

func (s *Server) restorePass(ctx context.Context) {
	vols := s.state.all()
	if len(vols) == 0 {
		return
	}
	mounts, err := s.mounts.List()
	if err != nil {
		s.log.Warn("node: restore: reading /proc/self/mountinfo", "error", err)
		return
	}
	p := &pass{mounts: mounts}
	for _, v := range vols {
		if ctx.Err() != nil {
			return
		}
		unlock, ok := s.locks.tryLock(v.VolumeID)
		if !ok {
			continue
		}
		if v = s.state.get(v.VolumeID); v != nil {
			s.look(ctx, p, v)
		}
		unlock()
	}
}

// look checks one volume and restores it if it needs it. The caller holds
// the volume's lock.
func (s *Server) look(ctx context.Context, p *pass, v *volumeState) {
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	state, err := s.mounts.Check(cctx, v.StagingPath)
	cancel()
	log := s.log.With("volume", v.VolumeID, "staging_path", v.StagingPath)
	switch {
	case err != nil:
		log.Debug("node: restore: staging mount not answering; leaving it", "error", err)
		return
	case state == fusefd.Healthy:
		s.settle(ctx, v, p.mounts)
		return
	case state == fusefd.NotMounted && !v.Restoring:
		return
	}
	// Broken, or taken down by an interrupted restore.
	s.mu.Lock()
	rs := s.restores[v.VolumeID]
	s.mu.Unlock()
	if rs != nil && time.Now().Before(rs.next) {
		return
	}
	if p.restored >= maxRestoresPerPass {
		return
	}
	if !p.pinged {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, p.mounterErr = s.mounter.Ping(pctx)
		cancel()
		p.pinged, p.mounterUp = true, p.mounterErr == nil
	}
	if !p.mounterUp {
		log.Debug("node: restore: waiting for the mounter", "error", p.mounterErr)
		return
	}
	p.restored++
	start := time.Now()
	err = s.restore(ctx, v)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.restores, v.VolumeID)
		log.Info("node: volume restored", "device", v.Device, "targets", len(v.Targets),
			"took", time.Since(start).Round(time.Millisecond))
		return
	}
	if rs == nil {
		rs = &restoreStatus{backoff: &backoff.ExponentialBackOff{
			InitialInterval: 2 * s.cfg.RestoreInterval, Multiplier: 2, RandomizationFactor: 0.1, MaxInterval: maxBackoff}}
		s.restores[v.VolumeID] = rs
	}
	rs.failures++
	wait := rs.backoff.NextBackOff()
	rs.next = time.Now().Add(wait)
	if msg := err.Error(); msg != rs.lastErr {
		log.Warn("node: restore failed; retrying", "error", err, "failures", rs.failures, "retry_in", wait)
		rs.lastErr = msg
	}
}

// restore mounts v's staging path again and binds its targets. The caller
// holds the volume's lock.
func (s *Server) restore(ctx context.Context, v *volumeState) error {
	s.log.Warn("node: restoring a volume whose FUSE server is gone", "volume", v.VolumeID,
		"staging_path", v.StagingPath, "targets", len(v.Targets))
	if !v.Restoring {
		v.Restoring = true
		if err := s.state.put(v); err != nil {
			return err
		}
	}
	if err := s.unmountHoard(v.StagingPath, true); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	if err := s.mountAndServe(rctx, v, true); err != nil {
		return err
	}
	v.Restoring = false
	if err := s.state.put(v); err != nil {
		return err
	}
	mounts, err := s.mounts.List()
	if err != nil {
		return err
	}
	return s.rebind(v, mounts)
}

// settle runs for a volume whose staging mount answers: it records a device
// that a plugin dying mid-stage did not (if the mounter serves this volume
// on it), and binds targets that still show a dead mount. mounts is the
// pass's snapshot of mountinfo.
func (s *Server) settle(ctx context.Context, v *volumeState, mounts []mountEntry) {
	t := top(stackAt(mounts, resolve(v.StagingPath, mounts)))
	if t == nil || !t.IsHoard() {
		return
	}
	if t.Device != v.Device || v.Restoring {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		owner, err := s.sessionVolume(lctx, t.Device)
		cancel()
		if err != nil || owner != v.VolumeID {
			s.log.Debug("node: staging path shows a mount the mounter does not serve for this volume",
				"volume", v.VolumeID, "device", t.Device, "owner", owner, "error", err)
			return
		}
		s.log.Info("node: recording the staging mount found serving", "volume", v.VolumeID,
			"device", t.Device, "recorded", v.Device)
		v.Device, v.Restoring = t.Device, false
		if err := s.state.put(v); err != nil {
			s.log.Warn("node: recording the staging mount", "volume", v.VolumeID, "error", err)
			return
		}
	}
	if err := s.rebind(v, mounts); err != nil {
		s.log.Warn("node: binding targets again", "volume", v.VolumeID, "error", err)
	}
}

// rebind binds the live staging mount over every recorded target that shows
// a dead hoard mount in mounts (a snapshot of mountinfo; bindTarget reads
// it again before it changes anything). Targets with nothing mounted are
// left alone: publishing is the CO's call.
func (s *Server) rebind(v *volumeState, mounts []mountEntry) error {
	var errs []error
	for _, target := range v.Targets {
		t := top(stackAt(mounts, resolve(target, mounts)))
		if t == nil || t.Device == v.Device || !t.IsHoard() {
			continue
		}
		if err := s.bindTarget(v, target); err != nil {
			errs = append(errs, err)
			continue
		}
		s.log.Info("node: target bound to the restored mount", "volume", v.VolumeID, "target", target)
	}
	return errors.Join(errs...)
}
