package fusefd

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Frames. Every message on hoard's Unix sockets is one frame: a 4-byte magic
// that names the protocol and its version, the payload's length as a
// big-endian uint32, and the payload; a frame may carry one descriptor
// (SCM_RIGHTS) attached to its first byte (Send, Receive). Two protocols use
// it:
//
//	hfd1  a /dev/fuse descriptor hand-over (Send, Receive); payload: metadata
//	hmr1  a request to the mounter or its answer (node/mounter); payload: JSON
//
// A magic that is not the one expected fails the read at once, so a message
// sent in the wrong place, or by a peer of another version, is refused
// loudly rather than misread. A new version of a protocol is a new magic.
const headerSize = 8

// appendHeader appends the header of a frame of n payload bytes.
func appendHeader(b []byte, magic string, n int) []byte {
	b = append(b, magic...)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// parseFrameHeader checks hdr's magic and returns the payload's length, at
// most max.
func parseFrameHeader(hdr []byte, magic string, max int) (int, error) {
	if string(hdr[:4]) != magic {
		return 0, fmt.Errorf("bad magic %q, want %q: not a peer of this protocol and version", hdr[:4], magic)
	}
	size := binary.BigEndian.Uint32(hdr[4:headerSize])
	if uint64(size) > uint64(max) {
		return 0, fmt.Errorf("payload of %d bytes, more than %d", size, max)
	}
	return int(size), nil
}

// WriteFrame writes payload as one frame of protocol magic (4 bytes), in one
// write.
func WriteFrame(w io.Writer, magic string, payload []byte, max int) error {
	if len(magic) != 4 {
		return fmt.Errorf("frame magic %q: want 4 bytes", magic)
	}
	if len(payload) > max {
		return fmt.Errorf("payload of %d bytes, more than %d", len(payload), max)
	}
	_, err := w.Write(append(appendHeader(make([]byte, 0, headerSize+len(payload)), magic, len(payload)), payload...))
	return err
}

// ReadFrame reads exactly one frame of protocol magic, with a payload of at
// most max bytes, and returns the payload. It reads no byte past the frame,
// so a frame that follows (with its descriptor) stays intact on the socket.
func ReadFrame(r io.Reader, magic string, max int) ([]byte, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n, err := parseFrameHeader(hdr[:], magic, max)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}
