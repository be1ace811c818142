package node

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// stateVersion is the format of a state file; files of another version are
// left alone (and logged) rather than misread.
const stateVersion = 1

// volumeState is what the plugin must remember about a staged volume to
// serve it again when its FUSE server dies: a restore has no CSI call to
// take the volume context and the secrets from. One file per volume,
// <state dir>/<sha256 of the volume ID>.json, mode 0600.
//
// It holds the node-stage secrets. That is deliberate: without them a
// broken staging mount cannot be restored until the CO calls NodeStageVolume
// again, which it does not do for a volume it believes staged. The state
// directory belongs on tmpfs (/run), so secrets never reach a disk and the
// records vanish at reboot together with the mounts they describe. Nothing
// logs a volumeState; String redacts the secrets.
type volumeState struct {
	Version  int    `json:"version"`
	VolumeID string `json:"volumeID"`
	// StagingPath is the staging target path, or for an inline ephemeral
	// volume a private directory under the state directory.
	StagingPath string `json:"stagingPath"`
	Ephemeral   bool   `json:"ephemeral,omitempty"`
	// Context is the volume context the volume was staged with; a restore
	// parses it again.
	Context map[string]string `json:"context"`
	// Secrets are the node-stage (for ephemeral volumes node-publish)
	// secrets, or nil for the ambient credentials of the mounter.
	Secrets map[string]string `json:"secrets,omitempty"`
	// AccessMode is the capability's access mode, for the record.
	AccessMode string `json:"accessMode,omitempty"`
	// Device is the staging mount's device ("major:minor") once the
	// mounter serves it; "" while being mounted.
	Device string `json:"device,omitempty"`
	// Targets are the published target paths.
	Targets []string `json:"targets,omitempty"`
	// Restoring is set while the restore loop has taken the broken staging
	// mount down and not yet served a new one, so that a plugin restarted
	// in between finishes the job instead of leaving the volume unmounted.
	Restoring bool      `json:"restoring,omitempty"`
	Updated   time.Time `json:"updated"`
}

// String describes v without its secrets.
func (v *volumeState) String() string {
	keys := slices.Sorted(maps.Keys(v.Secrets))
	return fmt.Sprintf("volume %q staged at %s (device %s, targets %v, secret keys %v)",
		v.VolumeID, v.StagingPath, v.Device, v.Targets, keys)
}

// LogValue is String.
func (v *volumeState) LogValue() slog.Value { return slog.StringValue(v.String()) }

func (v *volumeState) clone() *volumeState {
	c := *v
	c.Context = maps.Clone(v.Context)
	c.Secrets = maps.Clone(v.Secrets)
	c.Targets = slices.Clone(v.Targets)
	return &c
}

func (v *volumeState) hasTarget(p string) bool { return slices.Contains(v.Targets, p) }

func (v *volumeState) addTarget(p string) {
	if !v.hasTarget(p) {
		v.Targets = append(v.Targets, p)
	}
}

func (v *volumeState) removeTarget(p string) {
	v.Targets = slices.DeleteFunc(v.Targets, func(t string) bool { return t == p })
}

// store keeps the state files and a copy of them in memory. Callers hold
// the volume's lock around a get, change and put of one volume.
type store struct {
	dir string
	mu  sync.Mutex
	vol map[string]*volumeState
}

// openStore creates dir (0700) if needed and reads every state file in it.
// Unreadable files are reported in skipped and otherwise ignored.
func openStore(dir string) (s *store, skipped []string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("state dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("state dir: %w", err)
	}
	s = &store{dir: dir, vol: make(map[string]*volumeState)}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("state dir: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		var v volumeState
		if err == nil {
			err = json.Unmarshal(b, &v)
		}
		switch {
		case err != nil:
			skipped = append(skipped, fmt.Sprintf("%s: %v", name, err))
		case v.Version != stateVersion:
			skipped = append(skipped, fmt.Sprintf("%s: format version %d, want %d", name, v.Version, stateVersion))
		case v.VolumeID == "" || stateFile(v.VolumeID) != name:
			skipped = append(skipped, fmt.Sprintf("%s: does not match its volume ID", name))
		default:
			s.vol[v.VolumeID] = &v
		}
	}
	return s, skipped, nil
}

// stateFile is the file name of a volume's state.
func stateFile(volumeID string) string {
	h := sha256.Sum256([]byte(volumeID))
	return hex.EncodeToString(h[:]) + ".json"
}

// get returns a copy of the volume's state, or nil.
func (s *store) get(volumeID string) *volumeState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.vol[volumeID]; v != nil {
		return v.clone()
	}
	return nil
}

// all returns copies of every state, in volume ID order.
// count is the number of recorded volumes.
func (s *store) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.vol)
}

func (s *store) all() []*volumeState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*volumeState, 0, len(s.vol))
	for _, id := range slices.Sorted(maps.Keys(s.vol)) {
		out = append(out, s.vol[id].clone())
	}
	return out
}

// put writes v's file (atomically: a temporary file, fsync, rename) and
// then keeps a copy.
func (s *store) put(v *volumeState) error {
	v.Version = stateVersion
	v.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	name := filepath.Join(s.dir, stateFile(v.VolumeID))
	tmp, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing the state of volume %q: %w", v.VolumeID, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: gone already
	_, werr := tmp.Write(b)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("writing the state of volume %q: %w", v.VolumeID, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("writing the state of volume %q: %w", v.VolumeID, err)
	}
	if d, err := os.Open(s.dir); err == nil {
		d.Sync()
		d.Close()
	}
	s.mu.Lock()
	s.vol[v.VolumeID] = v.clone()
	s.mu.Unlock()
	return nil
}

// remove deletes the volume's file and copy; a missing one is fine.
func (s *store) remove(volumeID string) error {
	err := os.Remove(filepath.Join(s.dir, stateFile(volumeID)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the state of volume %q: %w", volumeID, err)
	}
	s.mu.Lock()
	delete(s.vol, volumeID)
	s.mu.Unlock()
	return nil
}

// ephemeralDir is where an inline ephemeral volume is staged: a private
// directory, as such volumes have no staging target path of their own.
func (s *store) ephemeralDir(volumeID string) string {
	return filepath.Join(s.dir, "ephemeral", strings.TrimSuffix(stateFile(volumeID), ".json"))
}
