package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/driver"
	"hoard.dev/hoard/fusefd"
	"hoard.dev/hoard/node/mounter"
)

// DefaultStateDir is where the plugin keeps its volume records: on tmpfs,
// because they hold node-stage secrets and describe mounts that do not
// survive a reboot either.
const DefaultStateDir = "/run/hoard/node"

// DefaultKubeletDir is the kubelet's root directory.
const DefaultKubeletDir = "/var/lib/kubelet"

// DefaultRestoreInterval is how often the restore loop looks for broken
// staging mounts.
const DefaultRestoreInterval = 5 * time.Second

// Config configures the node service.
type Config struct {
	// NodeID is what NodeGetInfo reports (the Kubernetes node name).
	NodeID string
	// StateDir holds one record per staged volume (default DefaultStateDir).
	StateDir string
	// MounterSocket is the mounter's socket (default mounter.DefaultSocket).
	MounterSocket string
	// AcceptSingleNodeWriter accepts SINGLE_NODE_WRITER capabilities, as
	// the controller does with the same flag; such volumes are still
	// mounted read-only.
	AcceptSingleNodeWriter bool
	// RestoreInterval is the restore loop's period (default
	// DefaultRestoreInterval).
	RestoreInterval time.Duration
	// KubeletDir is the kubelet's root directory (default
	// DefaultKubeletDir): every staging and target path must lie inside it.
	KubeletDir string
	// InlineAllow are the endpoints and buckets CSI inline ephemeral volumes
	// may name; none (the default) turns inline volumes off.
	InlineAllow []InlineRule
	// Mounts is the mount table the service works on; nil means
	// SystemMounts (the node's own, as root). Tests pass a fake.
	Mounts Mounts
	// Mounter is the client of the node's mounter; nil means a
	// mounter.Client on MounterSocket. Tests pass a fake.
	Mounter MounterClient
	Logger  *slog.Logger
}

// Server is the CSI Node service. Build it with New, serve it with
// driver.Serve, and run its restore loop with Run.
type Server struct {
	csi.UnimplementedNodeServer

	cfg        Config
	kubeletDir string // Config.KubeletDir, cleaned, its symbolic links resolved
	log        *slog.Logger
	state      *store
	mounts     Mounts
	mounter    MounterClient
	locks      volumeLocks

	mu sync.Mutex
	// restores tracks the restore loop's retries per volume.
	restores map[string]*restoreStatus
}

var _ csi.NodeServer = (*Server)(nil)

// New opens the state directory and looks at every volume it records: a
// restarted plugin takes its volumes over from there and from
// /proc/self/mountinfo. Healthy mounts need nothing (the mounter serves
// them); broken ones are left to the restore loop (Run).
func New(cfg Config) (*Server, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("node: a node ID is required (--node-id; in Kubernetes, the node name)")
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.RestoreInterval <= 0 {
		cfg.RestoreInterval = DefaultRestoreInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.KubeletDir == "" {
		cfg.KubeletDir = DefaultKubeletDir
	}
	if !filepath.IsAbs(cfg.KubeletDir) || filepath.Clean(cfg.KubeletDir) == "/" {
		return nil, fmt.Errorf("node: kubelet directory %q: want an absolute path other than /", cfg.KubeletDir)
	}
	kubeletDir := filepath.Clean(cfg.KubeletDir)
	if r, err := filepath.EvalSymlinks(kubeletDir); err == nil {
		kubeletDir = r
	}
	st, skipped, err := openStore(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	s := &Server{
		cfg: cfg, kubeletDir: kubeletDir, log: cfg.Logger, state: st,
		mounts:   cfg.Mounts,
		mounter:  cfg.Mounter,
		restores: make(map[string]*restoreStatus),
	}
	if s.mounts == nil {
		s.mounts = SystemMounts{}
	}
	if s.mounter == nil {
		s.mounter = &mounter.Client{Socket: cfg.MounterSocket}
	}
	for _, msg := range skipped {
		s.log.Warn("node: ignoring a state file", "problem", msg)
	}
	s.rediscover()
	return s, nil
}

// rediscover logs what a (re)started plugin finds: for each recorded volume,
// whether its staging mount is there and answers.
func (s *Server) rediscover() {
	vols := s.state.all()
	counts := map[fusefd.State]int{}
	for _, v := range vols {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		state, err := s.mounts.Check(ctx, v.StagingPath)
		cancel()
		counts[state]++
		log := s.log.With("volume", v.VolumeID, "staging_path", v.StagingPath, "targets", len(v.Targets))
		switch {
		case err != nil:
			log.Warn("node: recorded volume: staging mount not answering", "error", err)
		case state == fusefd.Healthy:
			log.Debug("node: recorded volume is served")
		case state == fusefd.Broken:
			log.Warn("node: recorded volume's FUSE server is gone; the restore loop will mount it again")
		case v.Restoring:
			log.Warn("node: recorded volume was being restored; the restore loop continues")
		default:
			log.Warn("node: recorded volume has no staging mount; waiting for NodeStageVolume or NodeUnstageVolume")
		}
	}
	if len(vols) > 0 {
		s.log.Info("node: volumes found in the state directory", "dir", s.cfg.StateDir, "volumes", len(vols),
			"healthy", counts[fusefd.Healthy], "broken", counts[fusefd.Broken],
			"not_mounted", counts[fusefd.NotMounted], "unknown", counts[fusefd.Unknown])
	}
}

// Health is the node's part of Probe: ready when the mounter answers. A
// mounter that does not answer makes the plugin not ready (driver.ErrNotReady):
// it cannot stage volumes, but restarting the plugin would not help.
func (s *Server) Health(ctx context.Context) error {
	if _, err := s.mounter.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %w", driver.ErrNotReady, err)
	}
	return nil
}

// StagedVolumes is the number of volumes the plugin has recorded as
// staged (hoard_csi_node_staged_volumes).
func (s *Server) StagedVolumes() int { return s.state.count() }

// mounterStatus turns an error from the mounter client into a gRPC status.
func mounterStatus(what string, err error) error {
	var me *mounter.Error
	switch {
	case errors.As(err, &me):
		return status.Errorf(me.Code, "%s: %s", what, me.Msg)
	case errors.Is(err, mounter.ErrUnreachable):
		return status.Errorf(codes.Unavailable, "%s: the hoard mounter is not running or not reachable (it serves every volume of the node): %v", what, err)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "%s: %v", what, err)
	case errors.Is(err, context.Canceled):
		return status.Errorf(codes.Canceled, "%s: %v", what, err)
	}
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}
