// Package ilagent reads the cursor that the reference agent (ilagent) keeps
// in its SQLite file, so a connection moves to edgepoll without a week of
// duplicates: table ilagent (key TEXT PRIMARY KEY, val TEXT, created_at
// TEXT), row key "edge_cursor:" + the first 16 hex digits of
// SHA-256(connector key), value the cursor in decimal. The file is opened
// read-only; nothing is written to it.
package ilagent

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// ErrNothing is wrapped by the errors that mean there is nothing to import:
// no file, no table, no row for this connection.
var ErrNothing = errors.New("nothing to import")

// RowKey is ilagent's row key of a connection's cursor.
func RowKey(connectorKey string) string {
	sum := sha256.Sum256([]byte(connectorKey))
	return "edge_cursor:" + hex.EncodeToString(sum[:])[:16]
}

// ReadCursor returns the reference agent's cursor for the connection in the
// SQLite file at path. Errors name the file, never the key.
func ReadCursor(ctx context.Context, path, connectorKey string) (int64, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, fmt.Errorf("ilagent file %s: %w: no such file", path, ErrNothing)
	case err != nil:
		return 0, fmt.Errorf("ilagent file %s: %v", path, err)
	case !st.Mode().IsRegular():
		return 0, fmt.Errorf("ilagent file %s: not a regular file", path)
	case st.Size() == 0: // ilagent creates its table at start: cut to 0 bytes is damage, not "no cursor"
		return 0, fmt.Errorf("ilagent file %s: is empty (0 bytes): not an ilagent database", path)
	}
	u := url.URL{Scheme: "file", Opaque: path, RawQuery: "mode=ro&_pragma=busy_timeout(5000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return 0, fmt.Errorf("ilagent file %s: %v", path, err)
	}
	defer db.Close()
	var val string
	err = db.QueryRowContext(ctx, "SELECT val FROM ilagent WHERE key = ?", RowKey(connectorKey)).Scan(&val)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("ilagent file %s: %w: no cursor for this connection (row %s)", path, ErrNothing, RowKey(connectorKey))
	case err != nil && strings.Contains(err.Error(), "no such table"):
		return 0, fmt.Errorf("ilagent file %s: %w: no table ilagent", path, ErrNothing)
	case err != nil:
		return 0, fmt.Errorf("ilagent file %s: not a readable ilagent database: %v", path, err)
	}
	c, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
	if err != nil || c < 0 {
		return 0, fmt.Errorf("ilagent file %s: cursor %q is not a decimal number", path, val)
	}
	return c, nil
}
