package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// DriverName is the CSI driver name: GetPluginInfo's name, the
// StorageClass provisioner and the CSIDriver object's name.
const DriverName = "csi.hoard.dev"

const (
	// socketMode is the CSI socket's permission bits: the CO's sidecars and
	// the kubelet run as root; nobody else has any business on it.
	socketMode = 0o600
	// dirMode is used when the socket's directory has to be created.
	dirMode = 0o750
	// stopTimeout bounds the graceful stop: calls in flight get this long to
	// finish before the server closes their connections.
	stopTimeout = 10 * time.Second
)

// Services are the CSI services one process serves. Identity is required;
// Controller and Node are registered only if set, so the mode of a process
// (controller, node or both) is which of them it has.
type Services struct {
	Identity   csi.IdentityServer
	Controller csi.ControllerServer
	Node       csi.NodeServer
	// Logger receives the log of every call (see the package comment);
	// nil means slog.Default().
	Logger *slog.Logger
	// Metrics, if set, gets the CSI call metrics (hoard_csi_*).
	Metrics prometheus.Registerer
}

// Endpoint is a parsed CSI endpoint: a unix socket path or a loopback TCP
// address.
type Endpoint struct {
	Network string // "unix" or "tcp"
	Address string // the socket path, or host:port
}

func (e Endpoint) String() string {
	if e.Network == "unix" {
		return "unix://" + e.Address
	}
	return "tcp://" + e.Address
}

// ParseEndpoint parses unix:///abs/path.sock (also unix:/abs/path.sock) or
// tcp://127.0.0.1:port. TCP is for tests and development only: CSI has no
// authentication and its requests carry secrets, so only loopback addresses
// (127.0.0.0/8, ::1, localhost) are accepted.
func ParseEndpoint(s string) (Endpoint, error) {
	const want = "want unix:///absolute/path.sock or tcp://127.0.0.1:port"
	switch {
	case strings.HasPrefix(s, "unix://"), strings.HasPrefix(s, "unix:/"):
		p := strings.TrimPrefix(strings.TrimPrefix(s, "unix:"), "//")
		if !filepath.IsAbs(p) {
			return Endpoint{}, fmt.Errorf("endpoint %q: the socket path must be absolute (%s)", s, want)
		}
		return Endpoint{Network: "unix", Address: filepath.Clean(p)}, nil
	case strings.HasPrefix(s, "tcp://"):
		hp := strings.TrimPrefix(s, "tcp://")
		host, _, err := net.SplitHostPort(hp)
		if err != nil {
			return Endpoint{}, fmt.Errorf("endpoint %q: %v (%s)", s, err, want)
		}
		if host != "localhost" {
			ip, err := netip.ParseAddr(host)
			if err != nil || !ip.IsLoopback() {
				return Endpoint{}, fmt.Errorf("endpoint %q: TCP endpoints must be loopback addresses: CSI calls carry secrets and are not authenticated (%s)", s, want)
			}
		}
		return Endpoint{Network: "tcp", Address: hp}, nil
	default:
		return Endpoint{}, fmt.Errorf("endpoint %q: %s", s, want)
	}
}

// Listen listens on endpoint. For a unix socket it creates the directory if
// missing, removes a stale socket left by an earlier run (only a socket: any
// other file is an error, not ours to delete) and creates the socket with
// mode 0600 from the start. Closing the listener removes the socket, if the
// path still holds the one it created.
func Listen(endpoint string) (net.Listener, error) {
	ep, err := ParseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	if ep.Network == "tcp" {
		return net.Listen("tcp", ep.Address)
	}
	return listenUnix(ep.Address)
}

func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("creating the directory of the CSI socket: %w", err)
	}
	switch fi, err := os.Lstat(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("checking for a stale CSI socket: %w", err)
	case fi.Mode().Type() != fs.ModeSocket:
		return nil, fmt.Errorf("CSI socket path %s exists and is not a socket (%s); refusing to remove it", path, fi.Mode().Type())
	default:
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("removing a stale CSI socket: %w", err)
		}
	}
	lc := net.ListenConfig{Control: chmodBeforeBind}
	l, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on the CSI socket: %w", err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	// chmodBeforeBind gave the socket its mode on Linux; this makes it exact
	// where fchmod of an unbound socket is not honoured.
	if err := os.Chmod(path, socketMode); err != nil {
		_ = ul.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("setting the CSI socket's mode: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		_ = ul.Close()
		return nil, fmt.Errorf("CSI socket vanished after listen: %w", err)
	}
	return &unixListener{UnixListener: ul, path: path, file: fi}, nil
}

// chmodBeforeBind runs between socket(2) and bind(2): Linux creates the
// socket file with the inode's mode (masked by the umask), so the file never
// exists with wider permissions, and the process-wide umask stays untouched.
func chmodBeforeBind(_, _ string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) { err = syscall.Fchmod(int(fd), socketMode) }); cerr != nil {
		return cerr
	}
	return err
}

// unixListener removes its socket on Close, unless the path has been taken
// over by another socket (a second instance during a rolling update).
type unixListener struct {
	*net.UnixListener
	path string
	file fs.FileInfo
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		fi, lerr := os.Lstat(l.path)
		// A freed inode number is often reused at once; a socket's mtime is
		// set at bind and tells two sockets apart.
		if lerr == nil && os.SameFile(fi, l.file) && fi.ModTime().Equal(l.file.ModTime()) {
			_ = os.Remove(l.path)
		}
	})
	return err
}

// NewServer returns a gRPC server with svc registered and every call logged
// (and a panic in a handler turned into an Internal error instead of a
// crash).
func NewServer(svc Services) (*grpc.Server, error) {
	if svc.Identity == nil {
		return nil, errors.New("driver: the Identity service is required")
	}
	log := svc.Logger
	if log == nil {
		log = slog.Default()
	}
	interceptors := []grpc.UnaryServerInterceptor{logCalls(log)}
	if svc.Metrics != nil {
		calls, err := newCallMetrics(svc.Metrics)
		if err != nil {
			return nil, fmt.Errorf("driver: CSI call metrics: %w", err)
		}
		interceptors = append(interceptors, countCalls(calls))
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(append(interceptors, recoverPanics(log))...))
	csi.RegisterIdentityServer(srv, svc.Identity)
	if svc.Controller != nil {
		csi.RegisterControllerServer(srv, svc.Controller)
	}
	if svc.Node != nil {
		csi.RegisterNodeServer(srv, svc.Node)
	}
	return srv, nil
}

// Serve listens on endpoint (see Listen) and serves svc until ctx is done;
// then it stops gracefully (calls in flight get a few seconds) and removes
// the socket. It returns nil after a stop asked for by ctx, or why it could
// not serve.
func Serve(ctx context.Context, endpoint string, svc Services) error {
	l, err := Listen(endpoint)
	if err != nil {
		return err
	}
	return ServeListener(ctx, l, svc)
}

// ServeListener is Serve on a listener the caller made; it closes l.
func ServeListener(ctx context.Context, l net.Listener, svc Services) error {
	srv, err := NewServer(svc)
	if err != nil {
		l.Close()
		return err
	}
	log := svc.Logger
	if log == nil {
		log = slog.Default()
	}
	log.Info("serving CSI", "endpoint", l.Addr().String(), "identity", true,
		"controller", svc.Controller != nil, "node", svc.Node != nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served:
		l.Close()
		return fmt.Errorf("serving CSI on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop() // closes l
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(stopTimeout):
		log.Warn("CSI calls still running after the stop timeout; closing their connections", "timeout", stopTimeout)
		srv.Stop()
		<-stopped
	}
	<-served
	log.Info("stopped serving CSI", "endpoint", l.Addr().String())
	return nil
}
