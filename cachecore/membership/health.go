package membership

import (
	"context"
	"strings"
	"time"
)

// EndpointStatus is the health of one etcd endpoint, as the coordinator's
// metrics and hoard status report it.
type EndpointStatus struct {
	Endpoint  string `json:"endpoint"`
	Healthy   bool   `json:"healthy"` // answered, and knows a leader
	HasLeader bool   `json:"has_leader"`
	IsLeader  bool   `json:"is_leader"`
	Version   string `json:"version,omitempty"`
	DBBytes   int64  `json:"db_bytes,omitempty"`
	// Alarms are etcd's own (e.g. NOSPACE when the database is full).
	Alarms []string `json:"alarms,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// Health asks each of the watcher's etcd endpoints for its status, each
// bounded by timeout.
func (w *EtcdWatcher) Health(ctx context.Context, timeout time.Duration) []EndpointStatus {
	out := make([]EndpointStatus, 0, len(w.cfg.Endpoints))
	for _, ep := range w.cfg.Endpoints {
		st := EndpointStatus{Endpoint: ep}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		resp, err := w.cli.Status(sctx, ep)
		cancel()
		if err != nil {
			st.Error = err.Error()
			out = append(out, st)
			continue
		}
		st.HasLeader = resp.Leader != 0
		st.IsLeader = resp.Header != nil && resp.Leader == resp.Header.MemberId
		st.Healthy = st.HasLeader && len(resp.Errors) == 0
		st.Version, st.DBBytes = resp.Version, resp.DbSize
		for _, e := range resp.Errors {
			st.Alarms = append(st.Alarms, strings.TrimSpace(e))
		}
		out = append(out, st)
	}
	return out
}
