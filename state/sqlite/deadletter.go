package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/internal/locallease"
)

// DeadLetter is the dead letter of --state sqlite:PATH (--dead-letter
// state, the default): a table of the state database,
//
//	deadletter (conn TEXT, id INTEGER, record TEXT, PRIMARY KEY (conn, id))
//
// record being the contract's JSON line. An Append is one transaction,
// committed with synchronous=FULL (the WAL is fsynced) before it returns,
// so before the cursor passes the item. The table is created by the first
// Append: the schema version stays 2, so an older edgepoll still opens the
// database. The database itself is opened by the first Append, List or
// Remove: a run that skips nothing (an empty cycle) opens the state file
// once, for its store, not a second time for the dead letter.
type DeadLetter struct {
	path string
	mu   sync.Mutex
	real string  // set with db
	db   *sql.DB // nil until the first use
}

// OpenDeadLetter returns the dead letter of the database at path, opened
// (creating it if needed, as Open) when it is first used; a path that
// cannot be a state file is an error at once.
func OpenDeadLetter(_ context.Context, path string, _ *slog.Logger) (*DeadLetter, error) {
	if err := locallease.CheckStatePath(path); err != nil {
		return nil, err
	}
	return &DeadLetter{path: path}, nil
}

// openDeadLetter is Backend.DeadLetter.
func openDeadLetter(ctx context.Context, path string, log *slog.Logger) (state.DeadLetter, error) {
	return OpenDeadLetter(ctx, path, log)
}

// conn returns the open database, opening it on the first call.
func (d *DeadLetter) conn(ctx context.Context) (*sql.DB, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db == nil {
		s, err := Open(ctx, d.path, nil)
		if err != nil {
			return nil, err
		}
		s.save.Close()
		d.db, d.real = s.db, s.real
	}
	return d.db, nil
}

func (d *DeadLetter) fail(op string, err error) error {
	d.mu.Lock()
	real := d.real
	d.mu.Unlock()
	return (&Store{path: d.path, real: real}).fail("dead letter: "+op, err)
}

const createDeadLetter = `CREATE TABLE IF NOT EXISTS deadletter (
	conn   TEXT NOT NULL,
	id     INTEGER NOT NULL,
	record TEXT NOT NULL,
	PRIMARY KEY (conn, id)
)`

// Append stores rec (replacing a record of the same item: one skipped
// again after a crash), committed durably before it returns.
func (d *DeadLetter) Append(ctx context.Context, conn string, rec poll.DeadLetterRecord) error {
	if rec.Connection == "" {
		rec.Connection = conn
	}
	b, err := state.EncodeDeadLetter(rec)
	if err != nil {
		return d.fail("encoding", err)
	}
	db, err := d.conn(ctx)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return d.fail("appending", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, createDeadLetter); err != nil {
		return d.fail("appending", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO deadletter (conn, id, record) VALUES (?, ?, ?)`,
		conn, rec.ID, string(b)); err != nil {
		return d.fail("appending", err)
	}
	if err := tx.Commit(); err != nil {
		return d.fail("appending", err)
	}
	return nil
}

// hasTable opens the database and reports whether the dead letter's table
// exists yet (op names the caller's operation in an error).
func (d *DeadLetter) hasTable(ctx context.Context, op string) (*sql.DB, bool, error) {
	db, err := d.conn(ctx)
	if err != nil {
		return nil, false, err
	}
	var n int
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'deadletter'`).Scan(&n)
	if err != nil {
		return nil, false, d.fail(op, err)
	}
	return db, n > 0, nil
}

// List returns conn's records in item order.
func (d *DeadLetter) List(ctx context.Context, conn string) ([]poll.DeadLetterRecord, error) {
	db, ok, err := d.hasTable(ctx, "listing")
	if err != nil || !ok {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT record FROM deadletter WHERE conn = ? ORDER BY id`, conn)
	if err != nil {
		return nil, d.fail("listing", err)
	}
	defer rows.Close()
	var out []poll.DeadLetterRecord
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, d.fail("listing", err)
		}
		rec, err := state.DecodeDeadLetter([]byte(s))
		if err != nil {
			return nil, d.fail("listing", fmt.Errorf("a damaged record: %v", err))
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, d.fail("listing", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Remove deletes conn's records of these ids, in one transaction.
func (d *DeadLetter) Remove(ctx context.Context, conn string, ids ...int64) error {
	db, ok, err := d.hasTable(ctx, "removing")
	if err != nil || !ok {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return d.fail("removing", err)
	}
	defer tx.Rollback()
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `DELETE FROM deadletter WHERE conn = ? AND id = ?`, conn, id); err != nil {
			return d.fail("removing", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return d.fail("removing", err)
	}
	return nil
}

// Close closes the database if it was opened.
func (d *DeadLetter) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db == nil {
		return nil
	}
	return d.db.Close()
}
