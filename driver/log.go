package driver

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"hoard.dev/hoard/volume"
)

// Redact returns msg as one line of JSON with every field the CSI spec marks
// csi_secret replaced by "***stripped***", for logs. Anything that is not a
// protobuf message is formatted with %v.
func Redact(msg any) string {
	if _, ok := msg.(proto.Message); ok {
		return protosanitizer.StripSecrets(msg).String()
	}
	return fmt.Sprintf("%v", msg)
}

// quietMethods are called often by the CO (and by liveness probes) and say
// nothing new: they are logged at debug level.
var quietMethods = map[string]bool{
	"/csi.v1.Identity/Probe":                       true,
	"/csi.v1.Identity/GetPluginInfo":               true,
	"/csi.v1.Identity/GetPluginCapabilities":       true,
	"/csi.v1.Controller/ControllerGetCapabilities": true,
	"/csi.v1.Node/NodeGetCapabilities":             true,
	"/csi.v1.Node/NodeGetInfo":                     true,
}

// logCalls logs each call when it ends: method, code, duration and, for an
// error, its message. At debug level also the request and the response,
// redacted. Messages and fields are always strings made by Redact: a raw
// request handed to a JSON handler would be marshalled with its secrets.
func logCalls(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		debugOn := log.Enabled(ctx, slog.LevelDebug)
		if debugOn {
			log.LogAttrs(ctx, slog.LevelDebug, "csi request",
				slog.String("method", info.FullMethod), slog.String("request", Redact(req)))
		}
		resp, err := handler(ctx, req)
		st := status.Convert(err)
		attrs := []slog.Attr{
			slog.String("method", info.FullMethod),
			slog.String("code", st.Code().String()),
			slog.Duration("duration", time.Since(start)),
		}
		attrs = append(attrs, callAttrs(req, resp)...)
		level := slog.LevelInfo
		if quietMethods[info.FullMethod] {
			level = slog.LevelDebug
		}
		if err != nil {
			attrs = append(attrs, slog.String("error", st.Message()))
			level = errorLevel(st.Code())
		}
		log.LogAttrs(ctx, level, "csi call", attrs...)
		if debugOn && err == nil {
			log.LogAttrs(ctx, slog.LevelDebug, "csi response",
				slog.String("method", info.FullMethod), slog.String("response", Redact(resp)))
		}
		return resp, err
	}
}

// Pod keys the kubelet adds to a volume context (podInfoOnMount).
const (
	podNameKey      = "csi.storage.k8s.io/pod.name"
	podNamespaceKey = "csi.storage.k8s.io/pod.namespace"
)

// callAttrs are what an operator looks for in a call's log line: the
// volume, the pod (NodePublishVolume, with podInfoOnMount) and the bucket
// and prefix it reads. Secrets are never among them.
func callAttrs(req, resp any) []slog.Attr {
	var attrs []slog.Attr
	id := ""
	if r, ok := req.(interface{ GetVolumeId() string }); ok {
		id = r.GetVolumeId()
	}
	if r, ok := resp.(*csi.CreateVolumeResponse); ok && id == "" {
		id = r.GetVolume().GetVolumeId()
	}
	if id != "" {
		attrs = append(attrs, slog.String("volume_id", id))
	}
	if r, ok := req.(*csi.CreateVolumeRequest); ok {
		attrs = append(attrs, slog.String("name", r.GetName()))
	}
	var vc map[string]string
	switch r := req.(type) {
	case interface{ GetVolumeContext() map[string]string }:
		vc = r.GetVolumeContext()
	case *csi.CreateVolumeRequest:
		vc = r.GetParameters()
	}
	if pod := vc[podNameKey]; pod != "" {
		attrs = append(attrs, slog.String("pod", vc[podNamespaceKey]+"/"+pod))
	}
	if src := logSource(vc); src != "" {
		attrs = append(attrs, slog.String("source", src))
	}
	return attrs
}

// logSource is the bucket and prefix a volume context (or StorageClass
// parameters) names, with the endpoint: s3://endpoint/bucket/prefix.
func logSource(vc map[string]string) string {
	b := vc[volume.KeyBucket]
	if b == "" {
		return ""
	}
	s := "s3://"
	if e := vc[volume.KeyEndpoint]; e != "" {
		s += strings.TrimPrefix(strings.TrimPrefix(e, "https://"), "http://") + "/"
	}
	s += b
	if p := strings.Trim(vc[volume.KeyPrefix], "/"); p != "" {
		s += "/" + p
	}
	return s
}

// errorLevel is error for codes that mean the driver (or what it depends on)
// failed, warn for those that mean the request cannot be served as asked.
func errorLevel(c codes.Code) slog.Level {
	switch c {
	case codes.Internal, codes.Unknown, codes.DataLoss:
		return slog.LevelError
	}
	return slog.LevelWarn
}

// recoverPanics turns a panic in a handler into an Internal error, so that
// one bad request does not take down the node's mounts with the process.
func recoverPanics(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.ErrorContext(ctx, "panic in CSI handler", "method", info.FullMethod,
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "internal error in %s", info.FullMethod)
			}
		}()
		return handler(ctx, req)
	}
}
