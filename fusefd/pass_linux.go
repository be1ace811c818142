package fusefd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// MaxMetaSize bounds the metadata sent next to a descriptor: room for a JSON
// description of a volume, not for bulk data.
const MaxMetaSize = 16 << 10

// A message is a header (magic, then the metadata length as a big-endian
// uint32), the metadata, and exactly one descriptor attached to the first
// byte. The header lets a stream socket find the message's end; on a packet
// socket the message is one record.
const (
	frameMagic  = "hfd1" // see frame.go
	maxRecvFDs  = 16     // room to receive (and close) what a confused peer attaches
	fuseDevMaj  = 10     // /dev/fuse is character device 10:229 (miscdevice FUSE_MINOR)
	fuseDevMin  = 229
	minServeFD  = 3 // go-fuse reads /dev/fd/0 as "not a descriptor"; keep off stdio
	fuseDevName = "/dev/fuse"
)

// Send writes meta (at most MaxMetaSize bytes, e.g. JSON naming the volume)
// and f's descriptor (SCM_RIGHTS) to conn, a SOCK_STREAM or SOCK_SEQPACKET Unix
// socket. f stays open in the caller, who normally closes it next: see the
// package comment on why the sender must not keep a copy. Deadlines set on
// conn apply.
func Send(conn *net.UnixConn, f *os.File, meta []byte) error {
	if len(meta) > MaxMetaSize {
		return fmt.Errorf("fusefd: send: metadata is %d bytes, more than %d", len(meta), MaxMetaSize)
	}
	if f == nil {
		return errors.New("fusefd: send: nil file")
	}
	frame := append(appendHeader(make([]byte, 0, headerSize+len(meta)), frameMagic, len(meta)), meta...)

	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("fusefd: send %s: %w", f.Name(), err)
	}
	var n, oobn int
	var werr error
	oob := []byte(nil)
	// Control keeps the descriptor open (its number unreused) while it is
	// being attached.
	if err := rc.Control(func(fd uintptr) {
		oob = unix.UnixRights(int(fd))
		n, oobn, werr = conn.WriteMsgUnix(frame, oob, nil)
	}); err != nil {
		return fmt.Errorf("fusefd: send %s: %w", f.Name(), err)
	}
	if werr != nil {
		return fmt.Errorf("fusefd: send %s: %w", f.Name(), werr)
	}
	if oobn != len(oob) {
		return fmt.Errorf("fusefd: send %s: descriptor not sent (%d of %d control bytes)", f.Name(), oobn, len(oob))
	}
	if n < len(frame) {
		// A stream socket took part of the frame; the descriptor went with it.
		if _, err := conn.Write(frame[n:]); err != nil {
			return fmt.Errorf("fusefd: send %s: %w", f.Name(), err)
		}
	}
	return nil
}

// Receive reads one message written by Send from conn and returns the
// descriptor as a file (close on exec: received with MSG_CMSG_CLOEXEC) and the
// metadata. It accepts exactly one descriptor, and only /dev/fuse; on any error
// every descriptor that arrived is closed, nothing leaks, and the connection
// should be closed as it may be out of step. Deadlines set on conn apply.
func Receive(conn *net.UnixConn) (*os.File, []byte, error) {
	r, err := newReceiver(conn)
	if err != nil {
		return nil, nil, fmt.Errorf("fusefd: receive: %w", err)
	}
	f, meta, err := r.receive()
	if err != nil {
		closeFDs(r.fds)
		return nil, nil, fmt.Errorf("fusefd: receive: %w", err)
	}
	return f, meta, nil
}

type receiver struct {
	rc     syscall.RawConn
	stream bool
	oob    []byte
	fds    []int // every descriptor received so far
}

func newReceiver(conn *net.UnixConn) (*receiver, error) {
	if conn == nil {
		return nil, errors.New("nil connection")
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	typ := 0
	var serr error
	if err := rc.Control(func(fd uintptr) {
		typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("SO_TYPE: %w", serr)
	}
	return &receiver{
		rc:     rc,
		stream: typ == unix.SOCK_STREAM,
		oob:    make([]byte, unix.CmsgSpace(maxRecvFDs*4)),
	}, nil
}

func (r *receiver) receive() (*os.File, []byte, error) {
	var msg []byte
	if r.stream {
		hdr := make([]byte, headerSize)
		if err := r.readFull(hdr); err != nil {
			return nil, nil, err
		}
		size, err := parseHeader(hdr)
		if err != nil {
			return nil, nil, err
		}
		msg = make([]byte, headerSize+size)
		copy(msg, hdr)
		if err := r.readFull(msg[headerSize:]); err != nil {
			return nil, nil, err
		}
	} else {
		buf := make([]byte, headerSize+MaxMetaSize)
		n, err := r.recv(buf)
		if err != nil {
			return nil, nil, err
		}
		if n == 0 {
			return nil, nil, io.EOF
		}
		if n < headerSize {
			return nil, nil, fmt.Errorf("short message (%d bytes)", n)
		}
		size, err := parseHeader(buf[:headerSize])
		if err != nil {
			return nil, nil, err
		}
		if n != headerSize+size {
			return nil, nil, fmt.Errorf("message is %d bytes, header says %d", n, headerSize+size)
		}
		msg = buf[:n]
	}
	switch len(r.fds) {
	case 0:
		return nil, nil, errors.New("message carries no file descriptor")
	case 1:
	default:
		return nil, nil, fmt.Errorf("message carries %d file descriptors, want 1", len(r.fds))
	}
	if err := checkFuseDev(r.fds[0]); err != nil {
		return nil, nil, err
	}
	meta := append([]byte(nil), msg[headerSize:]...)
	return os.NewFile(uintptr(r.fds[0]), fuseDevName), meta, nil
}

func parseHeader(hdr []byte) (int, error) { return parseFrameHeader(hdr, frameMagic, MaxMetaSize) }

// readFull fills b from a stream socket; a descriptor may come with any read.
func (r *receiver) readFull(b []byte) error {
	for got := 0; got < len(b); {
		n, err := r.recv(b[got:])
		if err != nil {
			return err
		}
		if n == 0 {
			if got == 0 && len(r.fds) == 0 {
				return io.EOF
			}
			return io.ErrUnexpectedEOF
		}
		got += n
	}
	return nil
}

// recv is one recvmsg(2) with MSG_CMSG_CLOEXEC through the runtime poller
// (so deadlines apply); descriptors that arrive are added to r.fds first,
// whatever else goes wrong.
func (r *receiver) recv(b []byte) (int, error) {
	var n, oobn, flags int
	var rerr error
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), b, r.oob, unix.MSG_CMSG_CLOEXEC)
			if rerr != unix.EINTR {
				break
			}
		}
		return rerr != unix.EAGAIN
	})
	if rerr == nil && oobn > 0 {
		fds, perr := parseRights(r.oob[:oobn])
		r.fds = append(r.fds, fds...)
		if perr != nil {
			return 0, perr
		}
	}
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	if flags&unix.MSG_CTRUNC != 0 {
		return 0, fmt.Errorf("control data truncated: more than %d descriptors attached", maxRecvFDs)
	}
	if flags&unix.MSG_TRUNC != 0 {
		return 0, fmt.Errorf("message larger than %d bytes", len(b))
	}
	return n, nil
}

// parseRights returns the descriptors of every SCM_RIGHTS message in oob.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control data: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&m)
		fds = append(fds, got...)
		if err != nil {
			return fds, fmt.Errorf("control data: %w", err)
		}
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// checkFuseDev fails unless fd is an open /dev/fuse.
func checkFuseDev(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("fstat received descriptor: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != fuseDevMaj || unix.Minor(st.Rdev) != fuseDevMin {
		return fmt.Errorf("received descriptor is not /dev/fuse (mode %#o, device %d:%d)",
			st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return nil
}

// ServePath hands f, an open /dev/fuse, to go-fuse: it returns "/dev/fd/N"
// for fuse.NewServer or fs.Mount, which then serve the mount f belongs to
// without mounting anything, adopt descriptor N and close it when their Serve
// loop ends. ServePath consumes f, also when it fails: it moves the descriptor to a fresh number N
// (>= 3, close on exec, blocking mode, as go-fuse reads it with plain read(2))
// and closes f, so the caller holds nothing that could close N under go-fuse.
// Pass the path to go-fuse at once; until then N is open and owned by no one.
func ServePath(f *os.File) (string, error) {
	if f == nil {
		return "", errors.New("fusefd: serve path: nil file")
	}
	defer f.Close() // a descriptor only read and written as a device: nothing to flush
	rc, err := f.SyscallConn()
	if err != nil {
		return "", fmt.Errorf("fusefd: serve path %s: %w", f.Name(), err)
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, minServeFD)
	}); err != nil {
		return "", fmt.Errorf("fusefd: serve path %s: %w", f.Name(), err)
	}
	if derr != nil {
		return "", fmt.Errorf("fusefd: serve path %s: dup: %w", f.Name(), derr)
	}
	// O_NONBLOCK belongs to the open file description, shared with the
	// sender's copy; go-fuse would get EAGAIN on a non-blocking one.
	if err := unix.SetNonblock(nfd, false); err != nil {
		unix.Close(nfd)
		return "", fmt.Errorf("fusefd: serve path %s: %w", f.Name(), err)
	}
	return "/dev/fd/" + strconv.Itoa(nfd), nil
}
