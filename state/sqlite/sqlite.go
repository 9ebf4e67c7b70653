// Package sqlite is the SQLite state backend (--state sqlite:PATH), pure Go
// (modernc.org/sqlite), so CGO_ENABLED=0 builds a static binary.
//
// Durability: the database runs in WAL mode with synchronous=NORMAL, so a
// saved cursor is in the WAL (in the OS page cache) when Save returns: it
// survives the process being killed. Sync checkpoints the WAL with fsync, so
// at the end of each batch the cursor also survives power loss.
//
// Lease: a kernel lock (flock) on a small file beside the database, one per
// connection (PATH.lock-<connection hash>); the kernel frees it when the
// holder dies, so a SIGKILLed run never blocks the next one.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state/internal/filelock"
)

const schemaVersion = 1

// Store is a SQLite-backed poll.Store.
type Store struct {
	path string
	db   *sql.DB
	log  *slog.Logger
	mu   sync.Mutex
	held map[string]bool // connections leased through this handle
}

// Open opens (creating if needed) the database at path. A file that is not
// a SQLite database, or one of a newer schema, is an error naming the path.
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("state %s: directory %s does not exist", path, dir)
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("state %s: not a regular file", path)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state %s: %v", path, err)
	}
	db.SetMaxOpenConns(1)
	s := &Store{path: path, db: db, log: log, held: map[string]bool{}}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("state %s: %v", path, err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("not a usable SQLite database: %v", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this edgepoll knows (%d)", v, schemaVersion)
	}
	_, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS cursors (
		conn       TEXT PRIMARY KEY,
		cursor     INTEGER NOT NULL,
		updated_at TEXT NOT NULL
	)`)
	if err != nil {
		return fmt.Errorf("creating the schema: %v", err)
	}
	_, err = s.db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion))
	return err
}

// Acquire takes the connection's lease (a kernel lock).
func (s *Store) Acquire(_ context.Context, conn, owner string) (poll.Lease, error) {
	lk, err := filelock.TryLock(s.lockPath(conn), fmt.Sprintf("%s pid %d since %s", owner, os.Getpid(), time.Now().UTC().Format(time.RFC3339)))
	if errors.Is(err, filelock.ErrLocked) {
		return nil, fmt.Errorf("%w: %v", poll.ErrLeaseHeld, err)
	}
	if err != nil {
		return nil, fmt.Errorf("state %s: lease: %v", s.path, err)
	}
	return &lease{s: s, conn: conn, lk: lk}, nil
}

func (s *Store) lockPath(conn string) string {
	c := conn
	if len(c) > 32 {
		c = c[:32]
	}
	return s.path + ".lock-" + c
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

type lease struct {
	s        *Store
	conn     string
	lk       *filelock.Lock
	released bool
}

func (l *lease) Load(ctx context.Context) (int64, bool, error) {
	var c int64
	err := l.s.db.QueryRowContext(ctx, "SELECT cursor FROM cursors WHERE conn = ?", l.conn).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("state %s: loading the cursor: %v", l.s.path, err)
	}
	return c, true, nil
}

func (l *lease) Save(ctx context.Context, cursor int64) error {
	if l.released {
		return errors.New("save after the lease was released")
	}
	_, err := l.s.db.ExecContext(ctx, `INSERT INTO cursors (conn, cursor, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (conn) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at
		WHERE excluded.cursor > cursors.cursor`, l.conn, cursor, time.Now().UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("state %s: saving the cursor: %v", l.s.path, err)
	}
	return nil
}

// Sync checkpoints the WAL into the database with fsync (power-loss
// durable).
func (l *lease) Sync(ctx context.Context) error {
	var busy, logFrames, ckpt int
	if err := l.s.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(FULL)").Scan(&busy, &logFrames, &ckpt); err != nil {
		return fmt.Errorf("state %s: checkpoint: %v", l.s.path, err)
	}
	if busy != 0 {
		return fmt.Errorf("state %s: checkpoint could not complete (database busy)", l.s.path)
	}
	return nil
}

func (l *lease) Release(context.Context) error {
	if l.released {
		return nil
	}
	l.released = true
	return l.lk.Unlock()
}
