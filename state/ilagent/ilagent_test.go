package ilagent

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/ilagenttest"
)

func TestReadCursor(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := filepath.Join(dir, "ilagent.db3")
	ilagenttest.Write(t, p, map[string]string{"iec1-a": "1234", "iec1-b": "77"})
	before, err := os.ReadFile(p)
	require.NoError(t, err)

	c, err := ReadCursor(ctx, p, "iec1-a")
	require.NoError(t, err)
	assert.Equal(t, int64(1234), c)
	c, err = ReadCursor(ctx, p, "iec1-b")
	require.NoError(t, err)
	assert.Equal(t, int64(77), c)
	after, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, before, after, "read-only")

	_, err = ReadCursor(ctx, p, "iec1-other")
	require.ErrorIs(t, err, ErrNothing)
	assert.NotContains(t, err.Error(), "iec1-other")

	_, err = ReadCursor(ctx, filepath.Join(dir, "missing.db3"), "iec1-a")
	require.ErrorIs(t, err, ErrNothing)

	empty := filepath.Join(dir, "empty.db3")
	db, err := sql.Open("sqlite", empty)
	require.NoError(t, err)
	_, err = db.Exec("CREATE TABLE other (x)")
	require.NoError(t, err)
	db.Close()
	_, err = ReadCursor(ctx, empty, "iec1-a")
	require.ErrorIs(t, err, ErrNothing)
	assert.Contains(t, err.Error(), "no table ilagent")

	junk := filepath.Join(dir, "junk.db3")
	require.NoError(t, os.WriteFile(junk, []byte("not a database at all, not at all"), 0o600))
	_, err = ReadCursor(ctx, junk, "iec1-a")
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrNothing)

	zero := filepath.Join(dir, "zero.db3")
	require.NoError(t, os.WriteFile(zero, nil, 0o600))
	_, err = ReadCursor(ctx, zero, "iec1-a")
	require.Error(t, err, "a file cut to 0 bytes is damage")
	assert.NotErrorIs(t, err, ErrNothing)

	bad := filepath.Join(dir, "bad.db3")
	ilagenttest.Write(t, bad, map[string]string{"iec1-a": "twelve"})
	_, err = ReadCursor(ctx, bad, "iec1-a")
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrNothing)
}

// The row key is ilagent's: "edge_cursor:" and 16 hex digits of SHA-256(key).
func TestRowKey(t *testing.T) {
	// printf %s iec1-a | sha256sum
	assert.Equal(t, "edge_cursor:eb832cc3272d9130", RowKey("iec1-a"))
}
