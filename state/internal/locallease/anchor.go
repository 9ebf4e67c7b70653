package locallease

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"sync"
	"syscall"

	"github.com/edgepoll/edgepoll/poll"
)

// fcntl(2) commands of open file description locks (Linux 3.15+), which
// the syscall package does not name.
const (
	fOFDSetLk = 37
)

// anchorBase is where the connections' lock bytes start on an anchor file:
// far beyond any data, and beyond the bytes SQLite locks (from 1 GiB on).
const (
	anchorBase = 1 << 40
	anchorSpan = 1 << 40
)

// fileID is a file's identity, whatever its name.
type fileID struct{ dev, ino uint64 }

// anchorFiles are the open anchor files, one per identity, kept open for the
// life of the process: closing any descriptor of a file drops every POSIX
// lock the process holds on it, SQLite's own included, so a descriptor of a
// database file, once opened, is never closed.
var anchorFiles struct {
	sync.Mutex
	m map[fileID]*os.File
}

// anchor is a held lock of one connection on an anchor file.
type anchor struct {
	f   *os.File
	off int64
}

// anchorFile returns the process's open descriptor of the file at path.
func anchorFile(path string) (*os.File, error) {
	anchorFiles.Lock()
	defer anchorFiles.Unlock()
	if anchorFiles.m == nil {
		anchorFiles.m = map[fileID]*os.File{}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err == nil {
		if f := anchorFiles.m[fileID{uint64(st.Dev), st.Ino}]; f != nil {
			var fst syscall.Stat_t
			if syscall.Fstat(int(f.Fd()), &fst) == nil && fst.Nlink > 0 {
				return f, nil
			}
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("lease: fstat %s: %w", path, err) // f stays open (see anchorFiles)
	}
	anchorFiles.m[fileID{uint64(st.Dev), st.Ino}] = f
	return f, nil
}

// anchorOffset is conn's lock byte.
func anchorOffset(conn string) int64 {
	h := fnv.New64a()
	h.Write([]byte(conn))
	return anchorBase + int64(h.Sum64()%anchorSpan)
}

// lockAnchor takes conn's lock on the anchor file at path; held by another
// open file description (another run, through another name of the state
// file): poll.ErrLeaseHeld.
func lockAnchor(path, conn string) (*anchor, error) {
	f, err := anchorFile(path)
	if err != nil {
		return nil, err
	}
	a := &anchor{f: f, off: anchorOffset(conn)}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: a.off, Len: 1}
	for {
		err = syscall.FcntlFlock(f.Fd(), fOFDSetLk, &lk)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	switch {
	case err == nil:
		return a, nil
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("%w (through another name of the state file: %s is locked)", poll.ErrLeaseHeld, path)
	}
	return nil, fmt.Errorf("lease: locking %s: %w", path, err)
}

func (a *anchor) unlock() {
	if a == nil {
		return
	}
	lk := syscall.Flock_t{Type: syscall.F_UNLCK, Whence: 0, Start: a.off, Len: 1}
	_ = syscall.FcntlFlock(a.f.Fd(), fOFDSetLk, &lk)
}
