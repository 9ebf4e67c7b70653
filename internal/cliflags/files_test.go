package cliflags

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Writable probes a path without changing it: an existing file is left as
// it was, no probe file stays behind; a directory or a missing directory
// is refused.
func TestWritable(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "dl.jsonl")
	require.NoError(t, os.WriteFile(existing, []byte("kept\n"), 0o600))
	assert.NoError(t, Writable(existing))
	assert.NoError(t, Writable(filepath.Join(dir, "new.prom")))
	got, err := os.ReadFile(existing)
	require.NoError(t, err)
	assert.Equal(t, "kept\n", string(got))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no probe file left, nothing created")

	assert.EqualError(t, Writable(dir), dir+" is a directory")
	missing := filepath.Join(dir, "nope")
	assert.EqualError(t, Writable(filepath.Join(missing, "x")), "directory "+missing+" does not exist")
}

func TestIsDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	assert.True(t, IsDir(dir))
	assert.False(t, IsDir(file))
	assert.False(t, IsDir(filepath.Join(dir, "nope")))
}
