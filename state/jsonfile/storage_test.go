package jsonfile

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/fstest"
	"github.com/edgepoll/edgepoll/poll"
)

// A negative cursor (or refusal count) is damage, refused naming the file,
// never taken as "no cursor"; so is a file cut to 0 bytes.
func TestNegativeCursorAndEmptyFileAreRefused(t *testing.T) {
	for name, body := range map[string]string{
		"negative cursor":   `{"version":1,"cursors":{"c":{"cursor":-5,"updated_at":""}}}`,
		"negative refusals": `{"version":1,"cursors":{"c":{"cursor":5,"refusals":-1,"updated_at":""}}}`,
		"0 bytes":           ``,
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.json")
			require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
			_, err := Open(context.Background(), p, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), p)
			assert.Contains(t, err.Error(), "corrupt")
		})
	}
}

// saveUntilError saves and syncs growing cursors until one fails.
func saveUntilError(t *testing.T, p string) error {
	t.Helper()
	s, err := Open(context.Background(), p, nil)
	if err != nil {
		return err
	}
	l, err := s.Acquire(context.Background(), "c", "test")
	if err != nil {
		return err
	}
	defer l.Release(context.Background())
	for i := int64(1); i <= 200; i++ {
		if err := l.Save(context.Background(), poll.Position{Cursor: i}); err != nil {
			return err
		}
		if err := l.Sync(context.Background()); err != nil {
			return err
		}
	}
	return nil
}

// Storage failures are named: a full disk, a read-only file system.
func TestDiskFullAndReadOnlyAreNamed(t *testing.T) {
	t.Run("disk full", func(t *testing.T) {
		dir := fstest.Tmpfs(t, "256k")
		p := filepath.Join(dir, "state.json")
		s, err := Open(context.Background(), p, nil)
		require.NoError(t, err)
		l, err := s.Acquire(context.Background(), "c", "test")
		require.NoError(t, err)
		defer l.Release(context.Background())
		require.NoError(t, l.Save(context.Background(), poll.Position{Cursor: 1}))
		fstest.Fill(t, dir)
		require.NoError(t, l.Save(context.Background(), poll.Position{Cursor: 2}), "the lock file's slots are written in place")
		err = l.Sync(context.Background())
		require.Error(t, err)
		t.Log(err)
		assert.Contains(t, err.Error(), "disk full")
		assert.Contains(t, err.Error(), p)
		require.NoError(t, os.Remove(filepath.Join(dir, "filler")))
		require.NoError(t, l.Sync(context.Background()), "space again: the cursor is written")
		got, _, err := s.LoadDurable(context.Background(), "c")
		require.NoError(t, err)
		assert.Equal(t, int64(2), got.Cursor)
	})
	t.Run("read-only", func(t *testing.T) {
		dir := fstest.Tmpfs(t, "256k")
		p := filepath.Join(dir, "state.json")
		require.NoError(t, os.WriteFile(p, []byte(`{"version":1,"cursors":{}}`), 0o600))
		fstest.ReadOnly(t, dir)
		err := saveUntilError(t, p)
		require.Error(t, err)
		t.Log(err)
		assert.Contains(t, err.Error(), "read-only file system")
	})
}

// No permission on the file is named as such (as a user other than root).
func TestPermissionDeniedIsNamed(t *testing.T) {
	dir, ok := fstest.Unprivileged(t)
	if !ok {
		return
	}
	p := filepath.Join(dir, "state.json")
	require.NoError(t, os.WriteFile(p, []byte(`{"version":1,"cursors":{}}`), 0))
	_, err := Open(context.Background(), p, nil)
	require.Error(t, err)
	t.Log(err)
	assert.Contains(t, err.Error(), "permission denied")
}
