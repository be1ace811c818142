package driver

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
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
