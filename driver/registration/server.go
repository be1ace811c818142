package registration

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// stopTimeout bounds the graceful stop of the gRPC server at shutdown; its
// calls are instant, so only a stuck peer can hold it that long.
const stopTimeout = 5 * time.Second

// Status is what the kubelet last reported through NotifyRegistrationStatus.
type Status struct {
	// Registered is true when the kubelet's last report was that it
	// registered the driver.
	Registered bool
	// Error is the kubelet's message when it refused the driver (it may be
	// empty even then); empty on success.
	Error string
	// Updated is when the kubelet last reported. Zero if it has not reported
	// since the socket was created (or re-created): registration is pending.
	Updated time.Time
}

// Server serves the registration socket. Build it with Serve; it stops when
// the context given to Serve is done.
type Server struct {
	cfg  Config
	path string
	log  *slog.Logger
	grpc *grpc.Server
	done chan struct{}

	mu struct {
		sync.Mutex
		status   Status
		lis      *net.UnixListener // the listener on the current socket
		sock     fs.FileInfo       // the current socket file, for identity checks
		serveErr error             // why serving on lis failed, if it did
	}
}

// Serve validates cfg, creates the registration socket and serves the kubelet
// plugin registration API on it until ctx is done; then it removes the socket
// (if still its own) and stops. Errors from validation or from creating the
// socket are returned; later trouble shows in Healthy and the log.
func Serve(ctx context.Context, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("registration: invalid config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("registration: %w", err)
	}
	s := &Server{
		cfg:  cfg,
		path: cfg.SocketPath(),
		grpc: grpc.NewServer(),
		done: make(chan struct{}),
	}
	s.log = cfg.Logger.With("component", "registration", "driver", cfg.DriverName, "socket", s.path)
	registerapi.RegisterRegistrationServer(s.grpc, &service{s: s})

	if err := s.listenAndServe(); err != nil {
		s.grpc.Stop()
		return nil, fmt.Errorf("registration: %w", err)
	}
	s.log.Info("registration socket ready; waiting for the kubelet",
		"endpoint", cfg.Endpoint, "versions", cfg.Versions)
	go s.run(ctx)
	return s, nil
}

// Path is the registration socket's path.
func (s *Server) Path() string { return s.path }

// Done is closed once the Server has stopped serving and removed its socket
// (unless the path by then held another instance's).
func (s *Server) Done() <-chan struct{} { return s.done }

// Status returns what the kubelet last reported.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.status
}

// Healthy returns nil while the Server serves on a socket that is still at its
// path. It checks the path on each call (one lstat), so it sees a removed
// socket before the watchdog re-creates it. Errors wrap ErrSocketMissing,
// ErrSocketReplaced or ErrStopped where those apply.
func (s *Server) Healthy() error {
	select {
	case <-s.done:
		return ErrStopped
	default:
	}
	s.mu.Lock()
	sock, serveErr := s.mu.sock, s.mu.serveErr
	s.mu.Unlock()
	if serveErr != nil {
		return fmt.Errorf("registration: serving %s: %w", s.path, serveErr)
	}
	if err := checkSocket(s.path, sock); err != nil {
		return fmt.Errorf("registration: %w", err)
	}
	return nil
}

// listenAndServe creates the socket and serves on it, retiring the previous
// listener if there was one (a re-creation). Only Serve and the run goroutine
// call it, never at the same time.
func (s *Server) listenAndServe() error {
	stale, err := prepare(s.path)
	if err != nil {
		return err
	}
	if stale {
		s.log.Info("removed a stale registration socket")
	}
	lis, sock, err := listen(s.path)
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.mu.lis
	s.mu.lis, s.mu.sock, s.mu.serveErr = lis, sock, nil
	// A new socket is a new registration: the kubelet deregistered the driver
	// when the old one went away and will report again.
	s.mu.status = Status{}
	s.mu.Unlock()
	if old != nil {
		// Its file is gone; Serve on it returns and is ignored in serve.
		_ = old.Close()
	}
	go s.serve(lis)
	return nil
}

// serve runs the gRPC server on lis. An error from the current listener is
// kept for Healthy; one from a retired listener is expected and dropped.
func (s *Server) serve(lis *net.UnixListener) {
	err := s.grpc.Serve(lis)
	if err == nil || errors.Is(err, grpc.ErrServerStopped) {
		return
	}
	s.mu.Lock()
	current := s.mu.lis == lis
	if current {
		s.mu.serveErr = err
	}
	s.mu.Unlock()
	if current {
		s.log.Error("registration server stopped serving", "err", err)
	}
}

// run is the watchdog, then the shutdown, in one goroutine: re-creation and
// shutdown never race.
func (s *Server) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	var problem string // the last problem logged, so each is logged once
	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			return
		case <-t.C:
			problem = s.check(problem)
		}
	}
}

// check looks at the socket once and re-creates it if it is gone. It returns
// the problem it is in (empty if none), and logs only when that changes.
func (s *Server) check(problem string) string {
	s.mu.Lock()
	sock := s.mu.sock
	s.mu.Unlock()
	err := checkSocket(s.path, sock)
	switch {
	case err == nil:
		if problem != "" {
			s.log.Info("registration socket is in place again")
		}
		return ""
	case errors.Is(err, ErrSocketMissing):
		const retrying = "re-create: "
		if !strings.HasPrefix(problem, retrying) {
			s.log.Warn("registration socket was removed while serving (the kubelet deregistered the driver); re-creating it so the kubelet registers the driver again")
		}
		if err := s.listenAndServe(); err != nil {
			if msg := retrying + err.Error(); msg != problem {
				s.log.Error("cannot re-create the registration socket; retrying", "err", err, "every", s.cfg.CheckInterval)
				return msg
			}
			return problem
		}
		s.log.Info("registration socket re-created; waiting for the kubelet")
		return ""
	case errors.Is(err, ErrSocketReplaced):
		if msg := err.Error(); msg != problem {
			s.log.Warn("registration socket path now holds another file, likely another instance of the driver; leaving it alone")
			return msg
		}
		return problem
	default:
		if msg := err.Error(); msg != problem {
			s.log.Error("cannot check the registration socket", "err", err)
			return msg
		}
		return problem
	}
}

// shutdown removes the socket, if it is still ours, so the kubelet
// deregisters the driver, then stops the gRPC server.
func (s *Server) shutdown() {
	s.mu.Lock()
	sock := s.mu.sock
	s.mu.Unlock()
	switch err := removeIfSame(s.path, sock); {
	case err == nil:
		s.log.Info("registration socket removed; stopping")
	case errors.Is(err, ErrSocketMissing):
		s.log.Info("registration socket already gone; stopping")
	case errors.Is(err, ErrSocketReplaced):
		s.log.Info("registration socket path belongs to another instance; leaving it and stopping")
	default:
		s.log.Error("cannot remove the registration socket", "err", err)
	}

	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(stopTimeout):
		s.grpc.Stop()
		<-stopped
	}
}

// setStatus records a NotifyRegistrationStatus and logs it if it changes the
// state: success and failure are logged once each, not once per kubelet retry.
func (s *Server) setStatus(registered bool, msg string) {
	now := time.Now()
	s.mu.Lock()
	prev := s.mu.status
	s.mu.status = Status{Registered: registered, Error: msg, Updated: now}
	s.mu.Unlock()

	changed := prev.Updated.IsZero() || prev.Registered != registered || prev.Error != msg
	switch {
	case !changed:
		s.log.Debug("kubelet repeated its registration status", "registered", registered, "error", msg)
	case registered:
		s.log.Info("kubelet registered the driver", "endpoint", s.cfg.Endpoint)
	default:
		s.log.Error("kubelet refused to register the driver; it will retry", "error", msg)
	}
}
