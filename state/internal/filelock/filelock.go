// Package filelock is a kernel file lock (flock(2)) for the local state
// backends: exclusive, per open file description (so two handles in one
// process exclude each other too), released by the kernel when the holder
// dies, even by SIGKILL.
package filelock

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// ErrLocked means another holder has the lock.
var ErrLocked = errors.New("locked by another holder")

// Lock is a held lock.
type Lock struct{ f *os.File }

// TryLock takes the lock on path without waiting, creating the file if
// needed, and writes note (who holds it) into it for operators. When the
// lock is held it returns ErrLocked wrapped with the holder's note.
func TryLock(path, note string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := make([]byte, 128)
		n, _ := f.ReadAt(holder, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if h := strings.TrimSpace(string(holder[:n])); h != "" {
				return nil, fmt.Errorf("%w (%s)", ErrLocked, h)
			}
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	if note != "" {
		_ = f.Truncate(0)
		_, _ = f.WriteAt([]byte(note+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Acquire takes the lock on path, waiting for it (for short critical
// sections, not for leases).
func Acquire(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Unlock releases the lock. The file stays (removing it would race with
// another process that opened it already).
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	return err
}
