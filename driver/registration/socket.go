package registration

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

var (
	// ErrSocketMissing: the registration socket is no longer at its path.
	ErrSocketMissing = errors.New("registration socket is missing")
	// ErrSocketReplaced: the path holds a file other than the socket this
	// Server created, typically the socket of another instance of the driver.
	ErrSocketReplaced = errors.New("registration socket was replaced by another file")
	// ErrStopped: the Server's context is done and it no longer serves.
	ErrStopped = errors.New("registration server stopped")
)

// listen listens on path with mode socketMode; the directory must exist and
// the path be free (see prepare). The returned listener does not unlink path
// when closed: the path may by then belong to a newer socket, and removal
// goes through removeIfSame. The FileInfo identifies the socket file created,
// for checkSocket and removeIfSame.
func listen(path string) (*net.UnixListener, fs.FileInfo, error) {
	lc := listenConfig()
	l, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on registration socket: %w", err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, fs.FileInfo, error) {
		_ = ul.Close()
		_ = os.Remove(path)
		return nil, nil, err
	}
	// chmodBeforeBind already gave the socket its mode on Linux; this makes
	// the mode exact wherever fchmod on an unbound socket is not honoured.
	if err := os.Chmod(path, socketMode); err != nil {
		return fail(fmt.Errorf("setting registration socket mode: %w", err))
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("registration socket vanished after listen: %w", err))
	}
	return ul, fi, nil
}

// listenConfig creates unix sockets with mode socketMode from the start.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{Control: chmodBeforeBind}
}

// chmodBeforeBind runs between socket(2) and bind(2). Linux creates the socket
// file with the socket inode's mode masked by the umask, so fchmod here means
// the file never exists with wider permissions, without touching the
// process-wide umask (which other goroutines' files would see).
func chmodBeforeBind(_, _ string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) {
		err = syscall.Fchmod(int(fd), socketMode)
	}); cerr != nil {
		return cerr
	}
	return err
}

// prepare creates the directory of path if missing and removes a socket left
// at path by an earlier run, as the plugin watcher expects of a starting
// plugin; it says whether there was one. It refuses to remove anything that
// is not a socket: that is not ours to delete.
func prepare(path string) (staleRemoved bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return false, fmt.Errorf("creating registration directory: %w", err)
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking for a stale registration socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return false, fmt.Errorf("registration socket path %s exists and is not a socket (%s); refusing to remove it", path, fi.Mode().Type())
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("removing stale registration socket: %w", err)
	}
	return true, nil
}

// checkSocket reports whether path still holds the socket file want.
func checkSocket(path string, want fs.FileInfo) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		// ENOTDIR: the directory itself was replaced by a file.
		return fmt.Errorf("%s: %w", path, ErrSocketMissing)
	case err != nil:
		return fmt.Errorf("checking registration socket: %w", err)
	case !sameSocket(fi, want):
		return fmt.Errorf("%s: %w", path, ErrSocketReplaced)
	}
	return nil
}

// sameSocket says whether a and b are the same socket file. While a listener
// is open the kernel keeps its socket file's inode alive, even unlinked, so a
// file that replaced it has another inode number. Once the listener is closed
// the number is freed and file systems reuse it at once; the modification
// time, set at bind and never changed afterwards, is the second guard.
func sameSocket(a, b fs.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime())
}

// removeIfSame removes path if it still holds the socket file want. If not,
// it leaves path alone and returns checkSocket's error (ErrSocketMissing,
// ErrSocketReplaced). Between the check and the removal another process could
// replace the file; the window is microseconds, at shutdown, against a
// takeover that is itself a deliberate act, and is accepted.
func removeIfSame(path string, want fs.FileInfo) error {
	if err := checkSocket(path, want); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing registration socket: %w", err)
	}
	return nil
}
