// Package filelock is a blocking kernel file lock (flock(2)) for short
// critical sections of the local state backends; released by the kernel when
// the holder dies, even by SIGKILL.
package filelock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Lock is a held lock.
type Lock struct{ f *os.File }

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
