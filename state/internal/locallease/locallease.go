// Package locallease is the lease and hot cursor shared by the local state
// backends (sqlite, json).
//
// The lease is a kernel lock (flock) on a small per-connection file beside
// the state file; the kernel frees it when the holder dies, even by SIGKILL.
//
// The same file carries the "hot" cursor: Save writes it with one pwrite into
// the page cache, which survives the process being killed, so saving after
// every item costs one syscall. Sync (the end of each batch) and Release
// write the cursor to the backend durably (fsync): that survives power loss.
// Load returns the larger of the two, so a run killed between Syncs loses
// nothing. The hot record carries a checksum; a torn one (power loss) is
// ignored and the backend's durable cursor wins.
package locallease

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgepoll/edgepoll/poll"
)

// Durable is the backend below: a durable, monotonic cursor per connection.
type Durable interface {
	// LoadDurable returns the stored cursor (0, false when none).
	LoadDurable(ctx context.Context, conn string) (int64, bool, error)
	// SaveDurable stores cursor if it is larger than the stored one and makes
	// it power-loss durable before returning.
	SaveDurable(ctx context.Context, conn string, cursor int64) error
}

// recordSize is the fixed size of the hot-cursor record at offset 0; the
// holder's note (for operators and the "held by" message) follows it.
const recordSize = 64

// CheckStatePath checks that a state file's directory exists and that the
// path, if present, is a regular file.
func CheckStatePath(path string) error {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("state %s: directory %s does not exist", path, dir)
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("state %s: not a regular file", path)
	}
	return nil
}

// AcquireFor takes the lease on conn for the state file statePath backed by
// d; errors other than poll.ErrLeaseHeld name the state file.
func AcquireFor(d Durable, statePath, conn, owner string) (poll.Lease, error) {
	l, err := Acquire(d, LockPath(statePath, conn), conn, owner)
	if err != nil && !errors.Is(err, poll.ErrLeaseHeld) {
		return nil, fmt.Errorf("state %s: %w", statePath, err)
	}
	return l, err
}

// LockPath is the per-connection lock file of a state file.
func LockPath(statePath, conn string) string {
	if len(conn) > 32 {
		conn = conn[:32]
	}
	return statePath + ".lock-" + conn
}

// Acquire takes the lease on conn: a non-blocking flock on lockPath.
func Acquire(d Durable, lockPath, conn, owner string) (poll.Lease, error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		note := readNote(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if note != "" {
				return nil, fmt.Errorf("%w (held by %s)", poll.ErrLeaseHeld, note)
			}
			return nil, poll.ErrLeaseHeld
		}
		return nil, fmt.Errorf("lease: flock %s: %w", lockPath, err)
	}
	l := &lease{d: d, f: f, conn: conn, path: lockPath}
	l.hot, _ = readRecord(f)
	note := fmt.Sprintf("%s pid %d since %s", owner, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	if _, err := f.WriteAt([]byte(note+"\n"), recordSize); err != nil {
		l.unlock()
		return nil, fmt.Errorf("lease: %w", err)
	}
	_ = f.Truncate(int64(recordSize + len(note) + 1))
	return l, nil
}

type lease struct {
	mu       sync.Mutex // Save and Sync may run concurrently
	d        Durable
	f        *os.File
	conn     string
	path     string
	hot      int64 // largest cursor saved (page cache)
	durable  int64 // largest cursor known written durably
	released bool
}

func (l *lease) Load(ctx context.Context) (int64, bool, error) {
	c, ok, err := l.d.LoadDurable(ctx, l.conn)
	if err != nil {
		return 0, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c > l.durable {
		l.durable = c
	}
	if l.hot > c {
		return l.hot, true, nil
	}
	return c, ok, nil
}

func (l *lease) Save(_ context.Context, cursor int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return errors.New("save after the lease was released")
	}
	if cursor <= l.hot {
		return nil
	}
	if _, err := l.f.WriteAt(record(cursor), 0); err != nil {
		return fmt.Errorf("saving the cursor to %s: %w", l.path, err)
	}
	l.hot = cursor
	return nil
}

func (l *lease) Sync(ctx context.Context) error {
	l.mu.Lock()
	hot, durable := l.hot, l.durable
	l.mu.Unlock()
	if hot <= durable {
		return nil
	}
	if err := l.d.SaveDurable(ctx, l.conn, hot); err != nil {
		return err
	}
	l.mu.Lock()
	if hot > l.durable {
		l.durable = hot
	}
	l.mu.Unlock()
	return nil
}

// Release writes an unsynced cursor durably, then unlocks.
func (l *lease) Release(ctx context.Context) error {
	if l.released {
		return nil
	}
	err := l.Sync(ctx)
	l.mu.Lock()
	l.released = true
	l.mu.Unlock()
	return errors.Join(err, l.unlock())
}

func (l *lease) unlock() error {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	return l.f.Close()
}

// record encodes the hot cursor: "cursor <n> <crc32>" padded to recordSize.
func record(c int64) []byte {
	n := strconv.FormatInt(c, 10)
	s := fmt.Sprintf("cursor %s %08x", n, crc32.ChecksumIEEE([]byte(n)))
	b := []byte(s + strings.Repeat(" ", recordSize-1-len(s)) + "\n")
	return b
}

func readRecord(f *os.File) (int64, bool) {
	b := make([]byte, recordSize)
	if n, _ := f.ReadAt(b, 0); n < recordSize {
		return 0, false
	}
	fields := strings.Fields(string(b))
	if len(fields) != 3 || fields[0] != "cursor" {
		return 0, false
	}
	if fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(fields[1]))) != fields[2] {
		return 0, false
	}
	c, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil || c < 0 {
		return 0, false
	}
	return c, true
}

func readNote(f *os.File) string {
	b := make([]byte, 160)
	n, _ := f.ReadAt(b, recordSize)
	return strings.TrimSpace(string(b[:n]))
}
