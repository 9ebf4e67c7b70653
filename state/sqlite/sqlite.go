// Package sqlite is the SQLite state backend (--state sqlite:PATH), pure Go
// (modernc.org/sqlite), so CGO_ENABLED=0 builds a static binary.
//
// Lease and per-item saves: see state/internal/locallease — kernel locks on
// PATH.lock-<connection hash> (PATH resolved: symlinks, "..") and on the
// database file itself, freed when the holder dies; the lock file also
// carries the hot cursor (one pwrite per item, survives a process kill).
// Sync, at the end of each batch, writes the cursor to the database in WAL
// mode with synchronous=FULL: the commit fsyncs, so it survives power loss.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/internal/fserr"
	"github.com/edgepoll/edgepoll/state/internal/locallease"
)

// schemaVersion 2 added cursors.refusals and the stats table.
const schemaVersion = 2

// Store is a SQLite-backed poll.Store.
type Store struct {
	path string // as given, for messages
	real string // resolved (symlinks, ".."): the file every name of it shares
	db   *sql.DB
	save *sql.Stmt // prepared once: parsing SQL costs more than the update
	log  *slog.Logger
}

// Backend registers --state sqlite:PATH.
var Backend = state.Backend{Scheme: "sqlite", Form: "sqlite:PATH", Validate: needPath,
	Local: true, Exists: state.FileExists, DeadLetter: openDeadLetter,
	Open: func(ctx context.Context, path string, log *slog.Logger) (poll.Store, error) {
		return Open(ctx, path, log)
	}}

func needPath(path string) error {
	if path == "" {
		return errors.New("sqlite: needs a file path")
	}
	return nil
}

// Open opens (creating if needed) the database at path. A file that is not
// a SQLite database, one cut to 0 bytes, or one of a newer schema is an
// error naming the path; a storage failure says which (disk full,
// permission denied, read-only file system).
func Open(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := locallease.CheckStatePath(path); err != nil {
		return nil, err
	}
	real, err := locallease.Resolve(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(real)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := create(ctx, real); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("state %s: %v", path, fserr.Describe(path, err))
	case st.Size() == 0:
		return nil, fmt.Errorf("state %s: the file is empty (0 bytes), not a SQLite database edgepoll wrote: "+
			"damaged (cut by a full disk or by hand?); restore it, or remove it deliberately — "+
			"edgepoll will not take it as no cursor", path)
	}
	db, err := openDB(real)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, real: real, db: db, log: log}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("state %s: %v", path, err)
	}
	if s.save, err = db.PrepareContext(ctx, `INSERT INTO cursors (conn, cursor, refusals, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (conn) DO UPDATE SET cursor = excluded.cursor, refusals = excluded.refusals, updated_at = excluded.updated_at
		WHERE excluded.cursor > cursors.cursor`); err != nil {
		db.Close()
		return nil, s.fail("preparing", err)
	}
	return s, nil
}

func openDB(path string) (*sql.DB, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state %s: %v", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// create makes a new database at path with its schema, never a file
// without one: a process killed while creating it must not leave a 0-byte
// file (refused as damage). The database is made under a temporary name
// and linked into place (link, unlike rename, never replaces a database
// another run created meanwhile).
func create(ctx context.Context, path string) error {
	tmp := fmt.Sprintf("%s.new-%d-%d", path, os.Getpid(), time.Now().UnixNano())
	defer func() {
		for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm", tmp + "-journal"} {
			_ = os.Remove(p)
		}
	}()
	db, err := openDB(tmp)
	if err != nil {
		return err
	}
	s := &Store{path: tmp, real: tmp, db: db}
	err = s.migrate(ctx)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fserr.Describe(tmp, cerr)
	}
	if err != nil {
		return fmt.Errorf("state %s: creating it: %v", path, err)
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("state %s: creating it: %v", path, fserr.Describe(path, err))
	}
	return syncDir(path)
}

func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("state %s: %v", path, fserr.Describe(path, err))
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("state %s: fsync directory: %v", path, fserr.Describe(path, err))
	}
	return nil
}

// fail is a failed operation on the database: "state PATH: op: cause",
// a storage failure named as such.
func (s *Store) fail(op string, err error) error {
	return fmt.Errorf("state %s: %s: %v", s.path, op, fserr.Describe(s.real, err))
}

func (s *Store) migrate(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		if k := fserr.Kind(s.real, err); k != "" {
			return fserr.Describe(s.real, err)
		}
		return fmt.Errorf("not a usable SQLite database: %v", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this edgepoll knows (%d)", v, schemaVersion)
	}
	if v == schemaVersion {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("creating the schema: %v", fserr.Describe(s.real, err))
	}
	defer tx.Rollback()
	stmts := []string{`CREATE TABLE IF NOT EXISTS cursors (
		conn       TEXT PRIMARY KEY,
		cursor     INTEGER NOT NULL,
		refusals   INTEGER NOT NULL DEFAULT 0,
		updated_at TEXT NOT NULL
	)`, `CREATE TABLE IF NOT EXISTS stats (
		conn          TEXT PRIMARY KEY,
		failures      INTEGER NOT NULL,
		last_success  TEXT NOT NULL,
		last_delivery TEXT NOT NULL
	)`}
	if v == 1 {
		stmts = append(stmts, `ALTER TABLE cursors ADD COLUMN refusals INTEGER NOT NULL DEFAULT 0`)
	}
	stmts = append(stmts, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion))
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("creating the schema: %v", fserr.Describe(s.real, err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("creating the schema: %v", fserr.Describe(s.real, err))
	}
	return nil
}

// Acquire takes the connection's lease (kernel locks on the lock file and
// on the database file itself: see locallease).
func (s *Store) Acquire(_ context.Context, conn, owner string) (poll.Lease, error) {
	l, err := locallease.AcquireFor(s, s.real, s.real, conn, owner)
	if err != nil && !errors.Is(err, poll.ErrLeaseHeld) {
		return nil, fmt.Errorf("state %s: %w", s.path, errors.Unwrap(err))
	}
	return l, err
}

// Close closes the database.
func (s *Store) Close() error {
	s.save.Close()
	return s.db.Close()
}

// LoadDurable implements locallease.Durable.
func (s *Store) LoadDurable(ctx context.Context, conn string) (poll.Position, bool, error) {
	var p poll.Position
	err := s.db.QueryRowContext(ctx, "SELECT cursor, refusals FROM cursors WHERE conn = ?", conn).Scan(&p.Cursor, &p.Refusals)
	if errors.Is(err, sql.ErrNoRows) {
		return poll.Position{}, false, nil
	}
	if err != nil {
		return poll.Position{}, false, s.fail("loading the cursor", err)
	}
	if p.Cursor < 0 || p.Refusals < 0 {
		return poll.Position{}, false, fmt.Errorf("state %s: damaged: the cursor of connection %s is %d (refusals %d), below 0; "+
			"fix it with `edgepoll state set-cursor` — edgepoll will not take it as no cursor", s.path, conn, p.Cursor, p.Refusals)
	}
	return p, true, nil
}

// SaveDurable implements locallease.Durable: a monotonic upsert, with st
// the statistics in the same transaction, whose commit fsyncs the WAL
// (synchronous=FULL).
func (s *Store) SaveDurable(ctx context.Context, conn string, p poll.Position, st *poll.Stats) error {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if st == nil {
		if _, err := s.save.ExecContext(ctx, conn, p.Cursor, p.Refusals, now); err != nil {
			return s.fail("saving the cursor", err)
		}
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("saving the cursor", err)
	}
	defer tx.Rollback()
	if _, err := tx.StmtContext(ctx, s.save).ExecContext(ctx, conn, p.Cursor, p.Refusals, now); err != nil {
		return s.fail("saving the cursor", err)
	}
	if err := saveStats(ctx, tx, conn, *st); err != nil {
		return s.fail("saving the run statistics", err)
	}
	if err := tx.Commit(); err != nil {
		return s.fail("saving the cursor", err)
	}
	return nil
}

// LoadStats implements locallease.Durable.
func (s *Store) LoadStats(ctx context.Context, conn string) (poll.Stats, error) {
	var (
		st             poll.Stats
		success, deliv string
	)
	err := s.db.QueryRowContext(ctx, "SELECT failures, last_success, last_delivery FROM stats WHERE conn = ?", conn).Scan(&st.Failures, &success, &deliv)
	if errors.Is(err, sql.ErrNoRows) {
		return poll.Stats{}, nil
	}
	if err != nil {
		return poll.Stats{}, s.fail("loading the run statistics", err)
	}
	st.LastSuccess, st.LastDelivery = parseTime(success), parseTime(deliv)
	return st, nil
}

// SaveStats implements locallease.Durable.
func (s *Store) SaveStats(ctx context.Context, conn string, st poll.Stats) error {
	if err := saveStats(ctx, s.db, conn, st); err != nil {
		return s.fail("saving the run statistics", err)
	}
	return nil
}

// saveStats replaces a connection's statistics through db (the store or a
// transaction).
func saveStats(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, conn string, st poll.Stats) error {
	_, err := db.ExecContext(ctx, `INSERT INTO stats (conn, failures, last_success, last_delivery) VALUES (?, ?, ?, ?)
		ON CONFLICT (conn) DO UPDATE SET failures = excluded.failures, last_success = excluded.last_success, last_delivery = excluded.last_delivery`,
		conn, st.Failures, formatTime(st.LastSuccess), formatTime(st.LastDelivery))
	return err
}

// formatTime is RFC 3339 (UTC), "" for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// PutDurable implements locallease.Durable: the operator's rewrite, any
// position (or none), committed with fsync.
func (s *Store) PutDurable(ctx context.Context, conn string, p poll.Position, ok bool) error {
	var err error
	if ok {
		_, err = s.db.ExecContext(ctx, `INSERT INTO cursors (conn, cursor, refusals, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (conn) DO UPDATE SET cursor = excluded.cursor, refusals = excluded.refusals, updated_at = excluded.updated_at`,
			conn, p.Cursor, p.Refusals, formatTime(time.Now()))
	} else {
		_, err = s.db.ExecContext(ctx, "DELETE FROM cursors WHERE conn = ?", conn)
	}
	if err != nil {
		return s.fail("writing the cursor", err)
	}
	return nil
}

// Inspect implements poll.Inspector: the stored cursor and when it was
// written, completed from the lock file (lease holder, a run's hot cursor).
func (s *Store) Inspect(ctx context.Context, conn string) (poll.StateInfo, error) {
	var info poll.StateInfo
	var at string
	err := s.db.QueryRowContext(ctx, "SELECT cursor, refusals, updated_at FROM cursors WHERE conn = ?", conn).Scan(&info.Cursor, &info.Refusals, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return info, s.fail("reading the cursor", err)
	default:
		info.HasCursor, info.UpdatedAt = true, parseTime(at)
	}
	info, err = locallease.Inspect(locallease.LockPath(s.real, conn), info)
	if err != nil {
		return info, fmt.Errorf("state %s: %w", s.path, err)
	}
	return info, nil
}
