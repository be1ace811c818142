package driver

import (
	"context"
	"path"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/internal/metrics"
)

// countCalls observes every call's duration in calls, by method (its short
// name, e.g. NodeStageVolume) and gRPC code.
func countCalls(calls *prometheus.HistogramVec) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		calls.WithLabelValues(path.Base(info.FullMethod), status.Code(err).String()).Observe(time.Since(start).Seconds())
		return resp, err
	}
}

// newCallMetrics registers the CSI call histogram in reg.
func newCallMetrics(reg prometheus.Registerer) (*prometheus.HistogramVec, error) {
	calls := metrics.NewHistogramVec(metrics.CSICallDuration)
	if err := reg.Register(calls); err != nil {
		return nil, err
	}
	return calls, nil
}
