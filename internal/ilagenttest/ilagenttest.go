// Package ilagenttest writes a SQLite file in the reference agent's
// (ilagent's) format, for tests of the migration.
package ilagenttest

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"testing"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Write creates path with ilagent's table and one cursor row per connector
// key (value: the cursor as ilagent writes it, decimal text).
func Write(t testing.TB, path string, cursors map[string]string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS ilagent (key TEXT PRIMARY KEY, val TEXT, created_at TEXT)`); err != nil {
		t.Fatal(err)
	}
	for key, val := range cursors {
		sum := sha256.Sum256([]byte(key))
		if _, err := db.Exec(`INSERT OR REPLACE INTO ilagent (key, val, created_at) VALUES (?, ?, datetime('now'))`,
			"edge_cursor:"+hex.EncodeToString(sum[:])[:16], val); err != nil {
			t.Fatal(err)
		}
	}
}
