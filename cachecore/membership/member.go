package membership

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Member is one cache worker as registered. It is stored as JSON:
// {"id", "addr", "weight", "capacity_bytes"}.
type Member struct {
	// ID is stable across restarts of the worker; routing hashes over it.
	// Printable ASCII, no spaces and no '/', at most 253 bytes.
	ID string `json:"id"`
	// Addr is where clients reach the worker (host:port or a URL).
	Addr string `json:"addr"`
	// Weight is the worker's relative share of chunks; 0 means 1.
	Weight float64 `json:"weight"`
	// Capacity is the worker's cache size in bytes; 0 means unknown.
	Capacity int64 `json:"capacity_bytes"`
}

// MaxWeight bounds a worker's weight: one registration, rogue or wrong, owns
// at most MaxWeight times a default worker's share of the chunks, never all
// of them. A registration above it is refused (clients skip it).
const MaxWeight = 16

// normalize checks m and fills in defaults.
func (m Member) normalize() (Member, error) {
	if err := checkName("member ID", m.ID); err != nil {
		return m, err
	}
	if strings.TrimSpace(m.Addr) == "" {
		return m, fmt.Errorf("membership: member %q: empty address", m.ID)
	}
	if math.IsNaN(m.Weight) || math.IsInf(m.Weight, 0) || m.Weight < 0 || m.Weight > MaxWeight {
		return m, fmt.Errorf("membership: member %q: weight %v is not a number from 0 to %d", m.ID, m.Weight, MaxWeight)
	}
	if m.Weight == 0 {
		m.Weight = 1
	}
	if m.Capacity < 0 {
		return m, fmt.Errorf("membership: member %q: negative capacity %d", m.ID, m.Capacity)
	}
	return m, nil
}

// decodeMember parses a stored registration and checks it against the ID in
// its key.
func decodeMember(id string, value []byte) (Member, error) {
	var m Member
	if err := json.Unmarshal(value, &m); err != nil {
		return m, fmt.Errorf("membership: registration of %q: %w", id, err)
	}
	if m.ID != id {
		return m, fmt.Errorf("membership: registration under %q names worker %q", id, m.ID)
	}
	return m.normalize()
}

// checkName validates a worker ID or cluster name, which become etcd key
// segments.
func checkName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("membership: empty %s", what)
	case len(s) > 253:
		return fmt.Errorf("membership: %s longer than 253 bytes", what)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return fmt.Errorf("membership: %s %q: byte %q not allowed (printable ASCII, no space or '/')", what, s, c)
		}
	}
	return nil
}

// View is one consistent picture of the cluster. A View is shared by every
// caller that got it and must not be modified.
type View struct {
	// Registered are all registered workers, alive or not, sorted by ID.
	Registered []Member
	// Alive holds true for each registered worker that is alive, and nothing
	// else.
	Alive map[string]bool
	// Rev is the etcd revision the view reflects (0 for a static view).
	Rev int64
}

// sameMembers reports whether a and b list the same workers with the same
// liveness, whatever their revisions.
func (v View) sameMembers(o View) bool {
	return slices.Equal(v.Registered, o.Registered) && maps.Equal(v.Alive, o.Alive)
}

// Source serves the current View and says when it changes.
//
// To follow changes without missing one, take Changed before Current:
//
//	for {
//		ch := src.Changed()
//		use(src.Current())
//		<-ch
//	}
type Source interface {
	// Current returns the latest view. It never blocks on the network.
	Current() View
	// Changed returns a channel that is closed when Current's result is
	// replaced by a view with different members or liveness.
	Changed() <-chan struct{}
}

// staticSource is a fixed list of members, all alive.
type staticSource struct {
	view    View
	changed chan struct{} // never closed
}

// Static returns a Source that serves members, all alive, forever: the
// membership of a cache without etcd.
func Static(members ...Member) (Source, error) {
	v := View{Registered: make([]Member, 0, len(members)), Alive: make(map[string]bool, len(members))}
	for _, m := range members {
		m, err := m.normalize()
		if err != nil {
			return nil, err
		}
		if v.Alive[m.ID] {
			return nil, fmt.Errorf("membership: member %q listed twice", m.ID)
		}
		v.Registered = append(v.Registered, m)
		v.Alive[m.ID] = true
	}
	slices.SortFunc(v.Registered, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return &staticSource{view: v, changed: make(chan struct{})}, nil
}

func (s *staticSource) Current() View            { return s.view }
func (s *staticSource) Changed() <-chan struct{} { return s.changed }
