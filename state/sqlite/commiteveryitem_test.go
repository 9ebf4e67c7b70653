package sqlite

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
)

// CommitEveryItemBackend is the alternative to the hot cursor that issue
// 17.4 measured (BENCHMARKS.md, "Local stores without the mmap hot
// cursor"): every Save is a commit to the database in WAL mode with
// synchronous=NORMAL (durable against a process kill, not a power loss),
// and Sync a commit with synchronous=FULL (fsync of the WAL). The lock file
// still holds the lease; its cursor slots are not written. It exists in
// the tests only (BenchmarkDrainHTTPStoreCommit pairs it with the hot
// cursor in one run); no --state scheme opens it.
var CommitEveryItemBackend = state.Backend{Scheme: "sqlite-commit", Form: "sqlite-commit:PATH", Validate: needPath,
	Local: true, Exists: state.FileExists, DeadLetter: openDeadLetter,
	Open: func(ctx context.Context, path string, log *slog.Logger) (poll.Store, error) {
		s, err := Open(ctx, path, log)
		if err != nil {
			return nil, err
		}
		if _, err := s.db.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
			s.Close()
			return nil, s.fail("opening", err)
		}
		return &commitStore{Store: s}, nil
	}}

type commitStore struct{ *Store }

func (c *commitStore) Acquire(ctx context.Context, conn, owner string) (poll.Lease, error) {
	l, err := c.Store.Acquire(ctx, conn, owner)
	if err != nil {
		return nil, err
	}
	return &commitLease{Lease: l, s: c.Store, conn: conn}, nil
}

// commitLease commits every Save; Sync commits with synchronous=FULL.
type commitLease struct {
	poll.Lease // Load, stats, the lock; CheapSave: Save runs per item
	s          *Store
	conn       string
	mu         sync.Mutex
	saved      int64
}

func (l *commitLease) Save(ctx context.Context, pos poll.Position) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if pos.Cursor <= l.saved {
		return nil
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if _, err := l.s.save.ExecContext(ctx, l.conn, pos.Cursor, pos.Refusals, now); err != nil {
		return l.s.fail("saving the cursor", err)
	}
	l.saved = pos.Cursor
	return nil
}

// Sync makes the commits so far power-loss durable: one commit with
// synchronous=FULL fsyncs the WAL, and with it every earlier commit.
func (l *commitLease) Sync(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, q := range []string{"PRAGMA synchronous = FULL", "UPDATE cursors SET updated_at = ? WHERE conn = ?",
		"PRAGMA synchronous = NORMAL"} {
		var err error
		if q[0] == 'U' {
			_, err = l.s.db.ExecContext(ctx, q, time.Now().UTC().Format(time.RFC3339Nano), l.conn)
		} else {
			_, err = l.s.db.ExecContext(ctx, q)
		}
		if err != nil {
			return l.s.fail("syncing the cursor", err)
		}
	}
	return nil
}

func (l *commitLease) Release(ctx context.Context) error {
	err := l.Sync(ctx)
	if rerr := l.Lease.Release(ctx); err == nil {
		err = rerr
	}
	return err
}

// CheapSave implements poll.CheapSaver: the cycle saves after every item.
func (l *commitLease) CheapSave() bool { return true }
