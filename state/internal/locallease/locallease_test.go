package locallease

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
)

type memDurable struct {
	c          map[string]int64
	r          map[string]int // refusals
	saves      int
	st         map[string]poll.Stats
	statsSaves int
}

func (m *memDurable) LoadDurable(_ context.Context, conn string) (poll.Position, bool, error) {
	c, ok := m.c[conn]
	return poll.Position{Cursor: c, Refusals: m.r[conn]}, ok, nil
}
func (m *memDurable) SaveDurable(ctx context.Context, conn string, p poll.Position, st *poll.Stats) error {
	m.saves++
	if st != nil {
		_ = m.SaveStats(ctx, conn, *st)
	}
	if _, ok := m.c[conn]; !ok || p.Cursor > m.c[conn] {
		m.put(conn, p)
	}
	return nil
}
func (m *memDurable) put(conn string, p poll.Position) {
	if m.r == nil {
		m.r = map[string]int{}
	}
	m.c[conn], m.r[conn] = p.Cursor, p.Refusals
}
func (m *memDurable) PutDurable(_ context.Context, conn string, p poll.Position, ok bool) error {
	m.saves++
	if ok {
		m.put(conn, p)
	} else {
		delete(m.c, conn)
		delete(m.r, conn)
	}
	return nil
}
func (m *memDurable) LoadStats(_ context.Context, conn string) (poll.Stats, error) {
	return m.st[conn], nil
}
func (m *memDurable) SaveStats(_ context.Context, conn string, st poll.Stats) error {
	m.statsSaves++
	if m.st == nil {
		m.st = map[string]poll.Stats{}
	}
	m.st[conn] = st
	return nil
}

func pos(c int64) poll.Position { return poll.Position{Cursor: c} }

func TestHotCursorSurvivesWithoutSyncAndSyncsOnce(t *testing.T) {
	d := &memDurable{c: map[string]int64{"a": 0}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	l, err := Acquire(d, p, "", "a", "run-1")
	require.NoError(t, err)
	_, _, err = l.Load(context.Background()) // as a cycle does
	require.NoError(t, err)
	for i := int64(1); i <= 100; i++ {
		require.NoError(t, l.Save(context.Background(), pos(i)))
	}
	assert.Equal(t, 0, d.saves, "per-item saves stay in the lock file")
	// Simulate a killed holder: drop the lock without Release.
	l.(*lease).unlock()
	l2, err := Acquire(d, p, "", "a", "run-2")
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
	l, err := Acquire(d, p, "", "a", "r")
	require.NoError(t, err)
	_, _, err = l.Load(context.Background())
	require.NoError(t, err)
	for i := int64(8); i <= 20; i++ {
		require.NoError(t, l.Save(context.Background(), pos(i)))
	}
	raw, err := os.ReadFile(p)
	require.NoError(t, err)
	s0, ok0 := parseRecord(raw[:recordSize])
	s1, ok1 := parseRecord(raw[recordSize:noteOffset])
	require.True(t, ok0 && ok1)
	assert.ElementsMatch(t, []int64{19, 20}, []int64{s0.Cursor, s1.Cursor}, "the pwrites reached the file (page cache)")
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
	l, err = Acquire(d, p, "", "a", "r2")
	require.NoError(t, err)
	c, _, _ := l.Load(context.Background())
	assert.Equal(t, int64(19), c.Cursor, "the other slot holds the previous cursor")
	require.NoError(t, l.Save(context.Background(), pos(21)))
	l.(*lease).unlock()

	// Both slots torn (power loss): the durable cursor wins.
	require.NoError(t, os.WriteFile(p, bytes.Repeat([]byte("x"), noteOffset), 0o600))
	l, err = Acquire(d, p, "", "a", "r3")
	require.NoError(t, err)
	c, _, _ = l.Load(context.Background())
	assert.Equal(t, int64(7), c.Cursor)
	require.NoError(t, l.Release(context.Background()))
}

// Save writes the slots with pwrite, alternately.
func TestSaveWritesTheSlots(t *testing.T) {
	d := &memDurable{c: map[string]int64{}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	l, err := Acquire(d, p, "", "a", "r")
	require.NoError(t, err)
	for i := int64(1); i <= 3; i++ {
		require.NoError(t, l.Save(context.Background(), pos(i)))
	}
	l.(*lease).unlock()
	f := mustOpen(t, p)
	c, next := readSlots(f)
	assert.Equal(t, int64(3), c.Cursor)
	assert.Equal(t, 1, next, "3 went to slot 0, so slot 1 is next")
}

func BenchmarkSave(b *testing.B) {
	d := &memDurable{c: map[string]int64{}}
	l, err := Acquire(d, filepath.Join(b.TempDir(), "s.lock-a"), "", "a", "r")
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
	l, err := Acquire(d, p, "", "a", "run-xyz")
	require.NoError(t, err)
	defer l.Release(context.Background())
	require.NoError(t, l.Save(context.Background(), pos(5)))
	_, err = Acquire(d, p, "", "a", "other")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "run-xyz")
}

// The hot slot carries the refusal streak with the cursor; a slot written
// by an older edgepoll (no streak) still reads.
func TestHotSlotCarriesRefusals(t *testing.T) {
	d := &memDurable{c: map[string]int64{}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	l, err := Acquire(d, p, "", "a", "r")
	require.NoError(t, err)
	require.NoError(t, l.Save(context.Background(), poll.Position{Cursor: 12, Refusals: 4}))
	l.(*lease).unlock() // killed: no Release, nothing durable
	l, err = Acquire(d, p, "", "a", "r2")
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

// A connection's first cursor is written durably at once; after that the
// hot cursor runs ahead of it.
func TestFirstCursorIsDurableAtOnce(t *testing.T) {
	d := &memDurable{c: map[string]int64{}}
	l, err := Acquire(d, filepath.Join(t.TempDir(), "s.lock-a"), "", "a", "r")
	require.NoError(t, err)
	_, ok, err := l.Load(context.Background())
	require.NoError(t, err)
	require.False(t, ok)
	for i := int64(1); i <= 5; i++ {
		require.NoError(t, l.Save(context.Background(), pos(i)))
	}
	assert.Equal(t, 1, d.saves)
	assert.Equal(t, int64(1), d.c["a"])
	l.(*lease).unlock()
}

// The state file was deleted (the store has no cursor for the connection):
// the hot cursor left in the lock file must not come back.
func TestHotCursorWithoutDurableOneIsStale(t *testing.T) {
	d := &memDurable{c: map[string]int64{"a": 3}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	l, err := Acquire(d, p, "", "a", "r")
	require.NoError(t, err)
	require.NoError(t, l.Save(context.Background(), pos(50)))
	l.(*lease).unlock() // killed before a Sync: 50 only in the lock file
	delete(d.c, "a")    // rm the state file

	for range 2 {
		l, err = Acquire(d, p, "", "a", "r2")
		require.NoError(t, err)
		c, ok, err := l.Load(context.Background())
		require.NoError(t, err)
		assert.False(t, ok, "cursor %d resurrected from the lock file", c.Cursor)
		l.(*lease).unlock()
	}
}

// SetCursor may move the cursor backwards, and ResetCursor forgets it; no
// hot copy in the lock file outranks either, even after a kill.
func TestSetCursorAndResetLeaveNoHiddenCursor(t *testing.T) {
	d := &memDurable{c: map[string]int64{"a": 3}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	ctx := context.Background()
	l, err := Acquire(d, p, "", "a", "r")
	require.NoError(t, err)
	require.NoError(t, l.Save(ctx, poll.Position{Cursor: 50, Refusals: 2}))
	l.(*lease).unlock() // killed: 50 hot, 3 durable

	l, err = Acquire(d, p, "", "a", "operator")
	require.NoError(t, err)
	require.NoError(t, l.(poll.CursorSetter).SetCursor(ctx, 5))
	l.(*lease).unlock()
	assert.Equal(t, int64(5), d.c["a"])

	l, err = Acquire(d, p, "", "a", "run")
	require.NoError(t, err)
	c, ok, err := l.Load(ctx)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, pos(5), c, "the streak starts over too")
	require.NoError(t, l.Save(ctx, pos(9)))
	require.NoError(t, l.(poll.CursorSetter).ResetCursor(ctx))
	l.(*lease).unlock()

	l, err = Acquire(d, p, "", "a", "run")
	require.NoError(t, err)
	_, ok, err = l.Load(ctx)
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, l.Release(ctx))
}

func TestInspectSeesHolderAndHotCursor(t *testing.T) {
	d := &memDurable{c: map[string]int64{"a": 3}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	ctx := context.Background()
	info, err := Inspect(p, poll.StateInfo{HasCursor: true, Cursor: 3})
	require.NoError(t, err)
	assert.False(t, info.Lease.Held, "no lock file yet")

	l, err := Acquire(d, p, "", "a", "run-holder")
	require.NoError(t, err)
	require.NoError(t, l.Save(ctx, poll.Position{Cursor: 8, Refusals: 1}))
	info, err = Inspect(p, poll.StateInfo{HasCursor: true, Cursor: 3})
	require.NoError(t, err)
	assert.True(t, info.Lease.Held)
	assert.Contains(t, info.Lease.Holder, "run-holder")
	assert.Equal(t, int64(8), info.Cursor, "a run's progress not yet synced")
	assert.Equal(t, 1, info.Refusals)
	_, err = Acquire(d, p, "", "a", "other")
	require.ErrorIs(t, err, poll.ErrLeaseHeld, "inspecting did not disturb the holder")

	require.NoError(t, l.Release(ctx))
	info, err = Inspect(p, poll.StateInfo{HasCursor: true, Cursor: 8})
	require.NoError(t, err)
	assert.False(t, info.Lease.Held)
	assert.Empty(t, info.Lease.Holder)
}

func mustOpen(t *testing.T, p string) *os.File {
	f, err := os.Open(p)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

// runCycle is what a cycle does with the lease: cursor and statistics
// loaded, the cursor moved to move (if > 0, synced), statistics saved,
// released. It returns the statistics loaded.
func runCycle(t *testing.T, d *memDurable, p string, move int64, st poll.Stats) poll.Stats {
	t.Helper()
	ctx := context.Background()
	l, err := Acquire(d, p, "", "a", "r")
	require.NoError(t, err)
	_, _, err = l.Load(ctx)
	require.NoError(t, err)
	got, err := l.LoadStats(ctx)
	require.NoError(t, err)
	if move > 0 {
		require.NoError(t, l.Save(ctx, pos(move)))
		require.NoError(t, l.Sync(ctx))
	}
	require.NoError(t, l.SaveStats(ctx, st))
	require.NoError(t, l.Release(ctx))
	return got
}

// An empty cycle writes nothing durably: its statistics go to the lock file
// only, and count in the next run; a cycle that writes the cursor takes
// them along; the first statistics are written durably at once.
func TestEmptyCycleWritesNothingDurable(t *testing.T) {
	d := &memDurable{c: map[string]int64{}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	runCycle(t, d, p, 0, poll.Stats{LastSuccess: t0})
	assert.Equal(t, 1, d.statsSaves, "the first statistics are durable at once")
	saves := d.saves

	empty := poll.Stats{Failures: 3, LastSuccess: t0, LastDelivery: t0.Add(-time.Hour)}
	runCycle(t, d, p, 0, empty)
	assert.Equal(t, 1, d.statsSaves, "an empty cycle writes no statistics durably")
	assert.Equal(t, saves, d.saves, "an empty cycle writes no cursor durably")
	got := runCycle(t, d, p, 7, poll.Stats{LastSuccess: t0.Add(time.Minute)})
	assert.Equal(t, empty, got, "the lock file's statistics count")
	assert.Equal(t, 2, d.statsSaves, "the cursor's durable write carries the statistics the store lacked")
	assert.Equal(t, saves+1, d.saves, "in the same write")
	assert.Equal(t, empty, d.st["a"])
	got = runCycle(t, d, p, 0, poll.Stats{})
	assert.Equal(t, t0.Add(time.Minute), got.LastSuccess, "the last cycle's own statistics, from the lock file")
	assert.Equal(t, 2, d.statsSaves)
}

// The lock file's statistics count only while the store has statistics or
// a cursor for the connection (a deleted state file leaves none behind),
// and a torn record falls back to the store's.
func TestHotStatsOnlyNextToDurableOnes(t *testing.T) {
	d := &memDurable{c: map[string]int64{}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	runCycle(t, d, p, 0, poll.Stats{LastSuccess: t0})
	runCycle(t, d, p, 0, poll.Stats{Failures: 2, LastSuccess: t0})
	assert.Equal(t, 2, runCycle(t, d, p, 0, poll.Stats{Failures: 2, LastSuccess: t0}).Failures)

	// Torn by a power loss: the store's copy.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("stats 9"), statsOffset)
	require.NoError(t, err)
	f.Close()
	assert.Equal(t, poll.Stats{LastSuccess: t0}, runCycle(t, d, p, 0, poll.Stats{Failures: 4, LastSuccess: t0}))

	// The state file deleted: nothing of the lock file's resurrects.
	d.st = nil
	assert.Equal(t, poll.Stats{}, runCycle(t, d, p, 0, poll.Stats{LastSuccess: t0}))
	assert.Equal(t, poll.Stats{LastSuccess: t0}, d.st["a"], "written durably again, as the first statistics")
}

// The holder's note is padded up to the statistics, which a new holder's
// (shorter) note leaves intact.
func TestNoteLeavesStatsIntact(t *testing.T) {
	d := &memDurable{c: map[string]int64{"a": 1}, st: map[string]poll.Stats{"a": {Failures: 1}}}
	p := filepath.Join(t.TempDir(), "s.lock-a")
	l, err := Acquire(d, p, "", "a", strings.Repeat("long-owner-", 20))
	require.NoError(t, err)
	_, _, _ = l.Load(context.Background())
	_, _ = l.LoadStats(context.Background())
	require.NoError(t, l.SaveStats(context.Background(), poll.Stats{Failures: 6}))
	require.NoError(t, l.Release(context.Background()))
	l, err = Acquire(d, p, "", "a", "short")
	require.NoError(t, err)
	defer l.Release(context.Background())
	assert.Equal(t, "short pid", readNote(l.(*lease).f)[:9])
	_, _, _ = l.Load(context.Background())
	st, err := l.LoadStats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 6, st.Failures)
}
