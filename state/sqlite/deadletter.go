package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sort"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
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
// database.
type DeadLetter struct {
	path, real string
	db         *sql.DB
}

// OpenDeadLetter opens (creating if needed, as Open) the database at path
// for its dead letter.
func OpenDeadLetter(ctx context.Context, path string, _ *slog.Logger) (*DeadLetter, error) {
	s, err := Open(ctx, path, nil)
	if err != nil {
		return nil, err
	}
	s.save.Close()
	return &DeadLetter{path: s.path, real: s.real, db: s.db}, nil
}

// openDeadLetter is Backend.DeadLetter.
func openDeadLetter(ctx context.Context, path string, log *slog.Logger) (state.DeadLetter, error) {
	return OpenDeadLetter(ctx, path, log)
}

func (d *DeadLetter) fail(op string, err error) error {
	return (&Store{path: d.path, real: d.real}).fail("dead letter: "+op, err)
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
	tx, err := d.db.BeginTx(ctx, nil)
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

// hasTable reports whether the dead letter's table exists yet.
func (d *DeadLetter) hasTable(ctx context.Context) (bool, error) {
	var n int
	err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'deadletter'`).Scan(&n)
	return n > 0, err
}

// List returns conn's records in item order.
func (d *DeadLetter) List(ctx context.Context, conn string) ([]poll.DeadLetterRecord, error) {
	if ok, err := d.hasTable(ctx); err != nil || !ok {
		if err != nil {
			return nil, d.fail("listing", err)
		}
		return nil, nil
	}
	rows, err := d.db.QueryContext(ctx, `SELECT record FROM deadletter WHERE conn = ? ORDER BY id`, conn)
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
	if ok, err := d.hasTable(ctx); err != nil || !ok {
		if err != nil {
			return d.fail("removing", err)
		}
		return nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
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

// Close closes the database.
func (d *DeadLetter) Close() error { return d.db.Close() }
