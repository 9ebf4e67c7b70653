// Package filelock is a kernel file lock (flock(2)), waited for until a
// context is done, for short
// critical sections of the local state backends; released by the kernel when
// the holder dies, even by SIGKILL.
package filelock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Lock is a held lock.
type Lock struct{ f *os.File }

// Acquire takes the lock on path, waiting for it as long as it takes (for
// short critical sections, not for leases). Prefer AcquireContext.
func Acquire(path string) (*Lock, error) { return AcquireContext(context.Background(), path) }

// AcquireContext takes the lock on path, waiting for it until ctx is done:
// a holder that never lets go (a hung process, a lock held by hand) fails
// the wait instead of blocking for ever.
func AcquireContext(ctx context.Context, path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	wait := time.Millisecond
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("waiting for the lock %s: %w", path, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
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
