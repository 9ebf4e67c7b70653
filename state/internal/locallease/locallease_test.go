package locallease

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type memDurable struct {
	c     map[string]int64
	saves int
}

func (m *memDurable) LoadDurable(_ context.Context, conn string) (int64, bool, error) {
	c, ok := m.c[conn]
	return c, ok, nil
}
func (m *memDurable) SaveDurable(_ context.Context, conn string, c int64) error {
	m.saves++
	if c > m.c[conn] {
		m.c[conn] = c
	}
	return nil
}

func TestHotCursorSurvivesWithoutSyncAndSyncsOnce(t *testing.T) {
	d := &memDurable{c: map[string]int64{}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	l, err := Acquire(d, p, "a", "run-1")
	require.NoError(t, err)
	for i := int64(1); i <= 100; i++ {
		require.NoError(t, l.Save(context.Background(), i))
	}
	assert.Equal(t, 0, d.saves, "per-item saves stay in the lock file")
	// Simulate a killed holder: drop the lock without Release.
	l.(*lease).unlock()
	l2, err := Acquire(d, p, "a", "run-2")
	require.NoError(t, err)
	c, ok, err := l2.Load(context.Background())
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, int64(100), c)
	require.NoError(t, l2.Release(context.Background()))
	assert.Equal(t, int64(100), d.c["a"], "release folds the hot cursor into the durable store")
	assert.Equal(t, 1, d.saves)
}

func TestTornRecordIgnored(t *testing.T) {
	d := &memDurable{c: map[string]int64{"a": 7}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	rec := record(900)
	rec[8] = '1' // corrupt a digit: checksum mismatch
	require.NoError(t, os.WriteFile(p, rec, 0o600))
	l, err := Acquire(d, p, "a", "r")
	require.NoError(t, err)
	c, _, _ := l.Load(context.Background())
	assert.Equal(t, int64(7), c)
	_, ok := readRecord(mustOpen(t, p))
	assert.False(t, ok)
}

func TestHeldMessageNamesHolder(t *testing.T) {
	d := &memDurable{c: map[string]int64{}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	l, err := Acquire(d, p, "a", "run-xyz")
	require.NoError(t, err)
	defer l.Release(context.Background())
	require.NoError(t, l.Save(context.Background(), 5))
	_, err = Acquire(d, p, "a", "other")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "run-xyz")
}

func mustOpen(t *testing.T, p string) *os.File {
	f, err := os.Open(p)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}
