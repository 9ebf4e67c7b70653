package locallease

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
)

type memDurable struct {
	c     map[string]int64
	saves int
}

func (m *memDurable) LoadDurable(_ context.Context, conn string) (poll.Position, bool, error) {
	c, ok := m.c[conn]
	return poll.Position{Cursor: c}, ok, nil
}
func (m *memDurable) SaveDurable(_ context.Context, conn string, p poll.Position) error {
	m.saves++
	if p.Cursor > m.c[conn] {
		m.c[conn] = p.Cursor
	}
	return nil
}
func (m *memDurable) LoadStats(context.Context, string) (poll.Stats, error) { return poll.Stats{}, nil }
func (m *memDurable) SaveStats(context.Context, string, poll.Stats) error   { return nil }

func pos(c int64) poll.Position { return poll.Position{Cursor: c} }

func TestHotCursorSurvivesWithoutSyncAndSyncsOnce(t *testing.T) {
	d := &memDurable{c: map[string]int64{}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	l, err := Acquire(d, p, "a", "run-1")
	require.NoError(t, err)
	for i := int64(1); i <= 100; i++ {
		require.NoError(t, l.Save(context.Background(), pos(i)))
	}
	assert.Equal(t, 0, d.saves, "per-item saves stay in the lock file")
	// Simulate a killed holder: drop the lock without Release.
	l.(*lease).unlock()
	l2, err := Acquire(d, p, "a", "run-2")
	require.NoError(t, err)
	c, ok, err := l2.Load(context.Background())
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, int64(100), c.Cursor)
	require.NoError(t, l2.Release(context.Background()))
	assert.Equal(t, int64(100), d.c["a"], "release folds the hot cursor into the durable store")
	assert.Equal(t, 1, d.saves)
}

// Save alternates between two slots, so a copy torn by a kill spoils only
// the slot being written and the other one holds the previous cursor.
func TestTornSlotCostsAtMostOneItem(t *testing.T) {
	d := &memDurable{c: map[string]int64{"a": 7}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	l, err := Acquire(d, p, "a", "r")
	require.NoError(t, err)
	require.NotNil(t, l.(*lease).m, "the slots are memory-mapped")
	for i := int64(8); i <= 20; i++ {
		require.NoError(t, l.Save(context.Background(), pos(i)))
	}
	raw, err := os.ReadFile(p)
	require.NoError(t, err)
	s0, ok0 := parseRecord(raw[:recordSize])
	s1, ok1 := parseRecord(raw[recordSize:noteOffset])
	require.True(t, ok0 && ok1)
	assert.ElementsMatch(t, []int64{19, 20}, []int64{s0.Cursor, s1.Cursor}, "the mapping reached the file (page cache)")
	newest := 0
	if s1.Cursor > s0.Cursor {
		newest = 1
	}
	l.(*lease).unlock() // killed: no Release

	// A kill in the middle of the next copy tears the newest slot.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("cursor 9"), int64(newest*recordSize))
	require.NoError(t, err)
	f.Close()
	l, err = Acquire(d, p, "a", "r2")
	require.NoError(t, err)
	c, _, _ := l.Load(context.Background())
	assert.Equal(t, int64(19), c.Cursor, "the other slot holds the previous cursor")
	require.NoError(t, l.Save(context.Background(), pos(21)))
	l.(*lease).unlock()

	// Both slots torn (power loss): the durable cursor wins.
	require.NoError(t, os.WriteFile(p, bytes.Repeat([]byte("x"), noteOffset), 0o600))
	l, err = Acquire(d, p, "a", "r3")
	require.NoError(t, err)
	c, _, _ = l.Load(context.Background())
	assert.Equal(t, int64(7), c.Cursor)
	require.NoError(t, l.Release(context.Background()))
}

// Without a mapping, Save writes the slots with pwrite.
func TestSaveWithoutMapping(t *testing.T) {
	d := &memDurable{c: map[string]int64{}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	l, err := Acquire(d, p, "a", "r")
	require.NoError(t, err)
	ll := l.(*lease)
	require.NoError(t, syscall.Munmap(ll.m))
	ll.m = nil
	for i := int64(1); i <= 3; i++ {
		require.NoError(t, l.Save(context.Background(), pos(i)))
	}
	ll.unlock()
	f := mustOpen(t, p)
	c, next := readSlots(f)
	assert.Equal(t, int64(3), c.Cursor)
	assert.Equal(t, 1, next, "3 went to slot 0, so slot 1 is next")
}

func BenchmarkSave(b *testing.B) {
	d := &memDurable{c: map[string]int64{}}
	l, err := Acquire(d, filepath.Join(b.TempDir(), "s.lock-a"), "a", "r")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Release(context.Background())
	var i int64
	for b.Loop() {
		i++
		if err := l.Save(context.Background(), pos(i)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHeldMessageNamesHolder(t *testing.T) {
	d := &memDurable{c: map[string]int64{}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	l, err := Acquire(d, p, "a", "run-xyz")
	require.NoError(t, err)
	defer l.Release(context.Background())
	require.NoError(t, l.Save(context.Background(), pos(5)))
	_, err = Acquire(d, p, "a", "other")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "run-xyz")
}

// The hot slot carries the refusal streak with the cursor; a slot written
// by an older edgepoll (no streak) still reads.
func TestHotSlotCarriesRefusals(t *testing.T) {
	d := &memDurable{c: map[string]int64{}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	l, err := Acquire(d, p, "a", "r")
	require.NoError(t, err)
	require.NoError(t, l.Save(context.Background(), poll.Position{Cursor: 12, Refusals: 4}))
	l.(*lease).unlock() // killed: no Release, nothing durable
	l, err = Acquire(d, p, "a", "r2")
	require.NoError(t, err)
	got, ok, err := l.Load(context.Background())
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, poll.Position{Cursor: 12, Refusals: 4}, got)
	l.(*lease).unlock()

	old, ok := parseRecord([]byte("cursor 42 " + fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte("42"))) + "\n"))
	assert.True(t, ok)
	assert.Equal(t, poll.Position{Cursor: 42}, old)
}

func mustOpen(t *testing.T, p string) *os.File {
	f, err := os.Open(p)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}
