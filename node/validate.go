package node

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/node/mounter"
	"hoard.dev/hoard/volume"
)

// ephemeralKey is the volume context key the kubelet sets to "true" for a
// CSI inline ephemeral volume (the CSIDriver needs podInfoOnMount: true).
const ephemeralKey = "csi.storage.k8s.io/ephemeral"

// checkCapability accepts mount capabilities with a read-only access mode,
// and SINGLE_NODE_WRITER where the controller accepts it too
// (Config.AcceptSingleNodeWriter) or for inline ephemeral volumes, which the
// kubelet always asks for with that mode. Every volume is mounted read-only
// whatever the mode says. Malformed capabilities are INVALID_ARGUMENT, ones
// hoard cannot serve FAILED_PRECONDITION (the spec's "exceeds capabilities").
// mount_flags, fs_type and volume_mount_group are ignored: the FUSE mount's
// options are fixed.
func checkCapability(c *csi.VolumeCapability, acceptWriter, ephemeral bool) error {
	if c == nil {
		return status.Error(codes.InvalidArgument, "volume_capability is required")
	}
	mode := c.GetAccessMode().GetMode()
	if mode == csi.VolumeCapability_AccessMode_UNKNOWN {
		return status.Error(codes.InvalidArgument, "volume_capability.access_mode is required")
	}
	switch {
	case c.GetBlock() != nil:
		return status.Error(codes.FailedPrecondition, "volume_capability: block access is not supported; hoard volumes are file systems (use a mount access type)")
	case c.GetMount() == nil:
		return status.Error(codes.InvalidArgument, "volume_capability.access_type is required (mount)")
	}
	switch mode {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		return nil
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER:
		if acceptWriter || ephemeral {
			return nil
		}
	}
	supported := "SINGLE_NODE_READER_ONLY, MULTI_NODE_READER_ONLY"
	if acceptWriter {
		supported += ", SINGLE_NODE_WRITER (mounted read-only)"
	}
	return status.Errorf(codes.FailedPrecondition,
		"volume_capability.access_mode %s: hoard volumes are read-only: the FUSE view does not support writes (supported: %s)", mode, supported)
}

// isWriterMode reports whether mode asks for writes, which hoard grants only
// as a read-only mount.
func isWriterMode(mode csi.VolumeCapability_AccessMode_Mode) bool {
	switch mode {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_UNKNOWN:
		return false
	}
	return true
}

// credentials turns CSI secrets (volume.ParseSecrets) into mounter
// credentials; nil means the mounter's ambient chain.
func credentials(secrets map[string]string) (*mounter.Credentials, error) {
	c, err := volume.ParseSecrets(secrets)
	if err != nil || c == nil {
		return nil, err
	}
	return &mounter.Credentials{
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken,
	}, nil
}

// volumeLocks serialises the calls (and restores) of one volume: stage,
// publish, unpublish, unstage and the restore loop all read, change and
// write its state and its mounts.
type volumeLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

// lock waits for the volume's lock until ctx is done; then the call fails
// with ABORTED, the code the CSI spec gives for "an operation is pending
// for this volume".
func (l *volumeLocks) lock(ctx context.Context, volumeID string) (unlock func(), err error) {
	for {
		l.mu.Lock()
		if l.held == nil {
			l.held = make(map[string]chan struct{})
		}
		ch, busy := l.held[volumeID]
		if !busy {
			ch = make(chan struct{})
			l.held[volumeID] = ch
			l.mu.Unlock()
			return func() { l.unlock(volumeID, ch) }, nil
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, status.Errorf(codes.Aborted, "another operation on volume %q is in progress", volumeID)
		}
	}
}

// tryLock takes the volume's lock if it is free.
func (l *volumeLocks) tryLock(volumeID string) (unlock func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = make(map[string]chan struct{})
	}
	if _, busy := l.held[volumeID]; busy {
		return nil, false
	}
	ch := make(chan struct{})
	l.held[volumeID] = ch
	return func() { l.unlock(volumeID, ch) }, true
}

func (l *volumeLocks) unlock(volumeID string, ch chan struct{}) {
	l.mu.Lock()
	if l.held[volumeID] == ch {
		delete(l.held, volumeID)
	}
	l.mu.Unlock()
	close(ch)
}

// required returns INVALID_ARGUMENT naming field if v is empty.
func required(field, v string) error {
	if v == "" {
		return status.Errorf(codes.InvalidArgument, "%s is required", field)
	}
	return nil
}

// absolute returns INVALID_ARGUMENT unless p is an absolute path.
func absolute(field, p string) error {
	if err := required(field, p); err != nil {
		return err
	}
	if !strings.HasPrefix(p, "/") {
		return status.Errorf(codes.InvalidArgument, "%s %q: must be an absolute path", field, p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return status.Errorf(codes.InvalidArgument, "%s: contains a NUL byte", field)
	}
	return nil
}

// kubeletPath returns INVALID_ARGUMENT unless p is an absolute path inside
// the kubelet's directory (Config.KubeletDir), judged after resolving its
// symbolic links as mount(2) would (fusefd.Resolve): the CO never asks
// for a mount or a removal anywhere else, so a path outside it is a bug or
// an attack (a bind over /etc, an rmdir of a host directory).
func (s *Server) kubeletPath(field, p string) error {
	if err := absolute(field, p); err != nil {
		return err
	}
	mounts, err := s.mounts.List()
	if err != nil {
		return status.Errorf(codes.Internal, "%s %s: reading the mount table: %v", field, p, err)
	}
	if r := resolve(p, mounts); !strings.HasPrefix(r, s.kubeletDir+"/") {
		return status.Errorf(codes.InvalidArgument, "%s %s: outside the kubelet's directory %s (--kubelet-dir)", field, p, s.kubeletDir)
	}
	return nil
}

func describeMode(c *csi.VolumeCapability) string {
	return fmt.Sprint(c.GetAccessMode().GetMode())
}
