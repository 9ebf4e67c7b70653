package sqlite

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

// A state file cut to 0 bytes is damage, never a fresh store: Open refuses
// it naming the file and leaves it as it is.
func TestEmptyFileIsRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	require.NoError(t, os.WriteFile(p, nil, 0o600))
	_, err := Open(context.Background(), p, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p)
	assert.Contains(t, err.Error(), "0 bytes")
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.Zero(t, st.Size(), "the damaged file must stay as it was")
}

// A new store is created whole (schema and all) under a temporary name and
// linked into place: no temporary file stays, and it opens again.
func TestCreateLeavesOnlyTheDatabase(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.db")
	s, err := Open(context.Background(), p, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"state.db"}, names)
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.NotZero(t, st.Size())
	s, err = Open(context.Background(), p, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

// saveUntilError saves and syncs growing cursors until one fails.
func saveUntilError(t *testing.T, p string) error {
	t.Helper()
	s, err := Open(context.Background(), p, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	l, err := s.Acquire(context.Background(), "c", "test")
	if err != nil {
		return err
	}
	defer l.Release(context.Background())
	for i := int64(1); i <= 5000; i++ {
		if err := l.Save(context.Background(), poll.Position{Cursor: i}); err != nil {
			return err
		}
		if err := l.Sync(context.Background()); err != nil {
			return err
		}
		if err := l.SaveStats(context.Background(), poll.Stats{Failures: int(i)}); err != nil {
			return err
		}
	}
	return nil
}

// A full disk is named as such, when creating the store and when saving
// to one that exists, never as "not a usable SQLite database".
func TestDiskFullIsNamed(t *testing.T) {
	t.Run("create", func(t *testing.T) {
		dir := fstest.Tmpfs(t, "256k")
		fstest.Fill(t, dir)
		p := filepath.Join(dir, "state.db")
		_, err := Open(context.Background(), p, nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "disk full")
		assert.Contains(t, err.Error(), p)
		t.Log(err)
		assert.NotContains(t, err.Error(), "not a usable")
		_, err = os.Stat(p)
		assert.ErrorIs(t, err, os.ErrNotExist, "no half-made state file")
	})
	t.Run("save", func(t *testing.T) {
		dir := fstest.Tmpfs(t, "256k")
		p := filepath.Join(dir, "state.db")
		s, err := Open(context.Background(), p, nil)
		require.NoError(t, err)
		require.NoError(t, s.Close())
		fstest.Fill(t, dir)
		err = saveUntilError(t, p)
		require.Error(t, err, "saving on a full disk must fail")
		assert.Contains(t, err.Error(), "disk full")
		t.Log(err)
		assert.NotContains(t, err.Error(), "not a usable")
	})
}

// A read-only file system is named as such.
func TestReadOnlyFileSystemIsNamed(t *testing.T) {
	dir := fstest.Tmpfs(t, "1m")
	p := filepath.Join(dir, "state.db")
	s, err := Open(context.Background(), p, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	fstest.ReadOnly(t, dir)
	err = saveUntilError(t, p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read-only file system")
	t.Log(err)
	assert.NotContains(t, err.Error(), "not a usable")

	_, err = Open(context.Background(), filepath.Join(dir, "new.db"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read-only file system")
}

// No permission on the file or its directory is named as such (as a user
// other than root: see fstest.Unprivileged).
func TestPermissionDeniedIsNamed(t *testing.T) {
	dir, ok := fstest.Unprivileged(t)
	if !ok {
		return
	}
	p := filepath.Join(dir, "state.db")
	s, err := Open(context.Background(), p, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	require.NoError(t, os.Chmod(p, 0))
	err = saveUntilError(t, p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "permission denied")
	t.Log(err)
	assert.NotContains(t, err.Error(), "not a usable")
	require.NoError(t, os.Chmod(p, 0o600))

	sub := filepath.Join(dir, "locked")
	require.NoError(t, os.Mkdir(sub, 0o500))
	_, err = Open(context.Background(), filepath.Join(sub, "state.db"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "permission denied")
}
