package mounter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc/codes"

	"hoard.dev/hoard/fusefd"
)

// DefaultSocket is where the mounter listens unless told otherwise.
const DefaultSocket = "/run/hoard/mounter.sock"

// Default bounds of a client's calls when the context has no deadline.
const (
	// DefaultServeTimeout covers opening a backend (etcd's first read), the
	// bucket probe (30 s at most) and the FUSE handshake.
	DefaultServeTimeout = 90 * time.Second
	// DefaultCallTimeout bounds list, ping and drop.
	DefaultCallTimeout = 10 * time.Second
)

// ErrUnreachable wraps a failure to reach the mounter at all (not running,
// socket missing, connection refused or cut before it answered).
var ErrUnreachable = errors.New("mounter not reachable")

// Client talks to a mounter over its Unix socket; one connection per call.
// The zero value uses DefaultSocket.
type Client struct {
	Socket string
}

func (c *Client) socket() string {
	if c.Socket == "" {
		return DefaultSocket
	}
	return c.Socket
}

// Serve hands f, the /dev/fuse descriptor of a freshly mounted staging path,
// and the volume's description to the mounter, and waits until the mounter
// serves it (or says why not). Serve consumes f: it closes it right after
// sending, before waiting for the answer, as fusefd requires, so that a
// mounter that dies now leaves a Broken mount and not a hanging one. On error
// the caller unmounts the staging path.
func (c *Client) Serve(ctx context.Context, f *os.File, req Request) (*SessionInfo, error) {
	req.Op = OpServe
	resp, err := c.call(ctx, DefaultServeTimeout, req, f)
	if err != nil {
		return nil, err
	}
	if resp.Session == nil {
		return nil, fmt.Errorf("%w: answer without a session", ErrUnreachable)
	}
	return resp.Session, nil
}

// List returns the mounter's sessions and backends.
func (c *Client) List(ctx context.Context) (*Response, error) {
	return c.call(ctx, DefaultCallTimeout, Request{Op: OpList}, nil)
}

// Ping checks that the mounter answers.
func (c *Client) Ping(ctx context.Context) (*Response, error) {
	return c.call(ctx, DefaultCallTimeout, Request{Op: OpPing}, nil)
}

// Drop tells the mounter that volumeID was unstaged, and returns how many of
// its sessions are still running after a short wait.
func (c *Client) Drop(ctx context.Context, volumeID string) (int, error) {
	resp, err := c.call(ctx, DefaultCallTimeout, Request{Op: OpDrop, VolumeID: volumeID}, nil)
	if err != nil {
		return 0, err
	}
	return resp.Remaining, nil
}

// call sends req (and f after it, for OpServe) and reads the answer. f, if
// not nil, is closed in every case.
func (c *Client) call(ctx context.Context, timeout time.Duration, req Request, f *os.File) (*Response, error) {
	if f != nil {
		defer f.Close() // idempotent; see the explicit Close after Send
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.socket())
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, c.socket(), err)
	}
	conn := nc.(*net.UnixConn)
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Cancellation (a CSI call the CO gave up on) cuts the connection.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if err := writeFrame(conn, req); err != nil {
		return nil, fmt.Errorf("%w at %s: send request: %w", ErrUnreachable, c.socket(), err)
	}
	if f != nil {
		err := fusefd.Send(conn, f, []byte(req.VolumeID))
		f.Close() // before waiting: the mounter must hold the only copy
		if err != nil {
			return nil, fmt.Errorf("%w at %s: send /dev/fuse: %w", ErrUnreachable, c.socket(), err)
		}
	}
	var resp Response
	if err := readFrame(conn, &resp); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("mounter at %s: no answer to %s: %w", c.socket(), req.Op, ctx.Err())
		}
		return nil, fmt.Errorf("%w at %s: no answer to %s: %w", ErrUnreachable, c.socket(), req.Op, err)
	}
	if !resp.OK {
		code := codes.Code(resp.Code)
		if code == codes.OK {
			code = codes.Internal
		}
		return nil, &Error{Code: code, Msg: resp.Error}
	}
	return &resp, nil
}
