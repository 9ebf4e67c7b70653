package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/contract"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

func TestMain(m *testing.M) {
	contract.ChildMain(func(loc string) (poll.Store, error) { return Open(context.Background(), loc, nil) })
	os.Exit(m.Run())
}

func TestContract(t *testing.T) {
	contract.Run(t, contract.Harness{
		Fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "edgepoll.db") },
		Open: func(t *testing.T, loc string) poll.Store {
			s, err := Open(context.Background(), loc, nil)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		ChildProcess: true,
		Local:        true,
		FileIdentity: true,
		DropVolatile: contract.DropLockFiles,
		StoreFiles:   func(loc string) []string { return []string{loc, loc + "-wal"} },
		DeleteStore: func(t *testing.T, loc string) {
			for _, p := range []string{loc, loc + "-wal", loc + "-shm"} {
				_ = os.Remove(p)
			}
		},
	})
}

func TestNotADatabase(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(p, []byte(strings.Repeat("this is not sqlite\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), p, nil)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("want an error naming %s, got %v", p, err)
	}
}

func TestMissingDirAndDirectoryInPlace(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(context.Background(), filepath.Join(dir, "nope", "x.db"), nil); err == nil {
		t.Fatal("missing directory must fail")
	}
	if _, err := Open(context.Background(), dir, nil); err == nil {
		t.Fatal("a directory in place of the file must fail")
	}
}

func BenchmarkSave(b *testing.B) {
	contract.BenchSave(b, "sqlite", func(path string) (poll.Store, error) { return Open(context.Background(), path, nil) })
}

func TestDeadLetterContract(t *testing.T) {
	contract.RunDeadLetter(t, contract.DeadLetterHarness{
		Fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "edgepoll.db") },
		Open: func(t *testing.T, loc string) state.DeadLetter {
			d, err := deadletter.OpenInState(context.Background(), Backend, loc, nil)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	})
}

// --dead-letter state keeps the records in a table of the database; the
// records an earlier version wrote to PATH.deadletter.jsonl beside it are
// still listed and removed, and nothing new goes there.
func TestDeadLetterInTheDatabaseAndTheOldFile(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "state.db")
	rec := func(id int64) poll.DeadLetterRecord {
		return poll.NewDeadLetterRecord("c", poll.Event{ID: id, Payload: []byte(`{"n":1}`)},
			poll.Permanent("http_404", errors.New("404")), time.Now())
	}
	old, err := deadletter.OpenFile(p + ".deadletter.jsonl")
	require.NoError(t, err)
	require.NoError(t, old.Append(ctx, "c", rec(1)))
	require.NoError(t, old.Append(ctx, "c", rec(2)))
	oldBytes, err := os.ReadFile(p + ".deadletter.jsonl")
	require.NoError(t, err)

	d, err := deadletter.OpenInState(ctx, Backend, p, nil)
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, d.Append(ctx, "c", rec(3)))
	after, err := os.ReadFile(p + ".deadletter.jsonl")
	require.NoError(t, err)
	assert.Equal(t, string(oldBytes), string(after), "nothing new in the old file")
	var n int
	require.NoError(t, d.(interface{ Unwrap() state.DeadLetter }).Unwrap().(*DeadLetter).db.QueryRow(
		"SELECT count(*) FROM deadletter WHERE conn = 'c' AND id = 3").Scan(&n))
	assert.Equal(t, 1, n, "the record is in the database")

	got, err := d.List(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 2, 3}, recIDs(got))
	require.NoError(t, d.Remove(ctx, "c", 1, 3))
	got, err = d.List(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, []int64{2}, recIDs(got))
	got, err = old.List(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, []int64{2}, recIDs(got), "removed from the old file too")
}

// The dead letter opens the database on its first use (issue 19.3: a run
// that skips nothing opens the state file once, for its store): opening
// it creates nothing; the first Append creates the database and keeps the
// record; a damaged file is refused then, naming the path.
func TestDeadLetterOpensTheDatabaseOnFirstUse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := filepath.Join(dir, "state.db")
	rec := poll.NewDeadLetterRecord("c", poll.Event{ID: 7, Payload: []byte(`{"n":1}`)},
		poll.Permanent("http_404", errors.New("404")), time.Now())

	d, err := OpenDeadLetter(ctx, p, nil)
	require.NoError(t, err)
	_, err = os.Stat(p)
	assert.ErrorIs(t, err, os.ErrNotExist, "opening the dead letter creates nothing")
	require.NoError(t, d.Close(), "closing one never used")

	d, err = OpenDeadLetter(ctx, p, nil)
	require.NoError(t, err)
	require.NoError(t, d.Append(ctx, "c", rec))
	require.NoError(t, d.Close())
	s, err := Open(ctx, p, nil)
	require.NoError(t, err, "the first Append created the database")
	require.NoError(t, s.Close())
	d, err = OpenDeadLetter(ctx, p, nil)
	require.NoError(t, err)
	got, err := d.List(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, []int64{7}, recIDs(got))
	require.NoError(t, d.Close())

	empty := filepath.Join(dir, "empty.db")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	d, err = OpenDeadLetter(ctx, empty, nil)
	require.NoError(t, err)
	err = d.Append(ctx, "c", rec)
	require.Error(t, err)
	assert.Contains(t, err.Error(), empty)
	assert.Contains(t, err.Error(), "empty (0 bytes)")
	_, err = d.List(ctx, "c")
	assert.Error(t, err, "listing refuses it too")
	require.NoError(t, d.Close())
}

// Connections of a --config file share one dead letter: their first
// Appends may race to open the database; it is opened once, every record
// is kept.
func TestDeadLetterFirstUseConcurrent(t *testing.T) {
	ctx := context.Background()
	d, err := OpenDeadLetter(ctx, filepath.Join(t.TempDir(), "state.db"), nil)
	require.NoError(t, err)
	defer d.Close()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.Append(ctx, "c", poll.NewDeadLetterRecord("c", poll.Event{ID: int64(i + 1), Payload: []byte(`{}`)},
				poll.Permanent("http_404", errors.New("404")), time.Now()))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	got, err := d.List(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 2, 3, 4}, recIDs(got))
}

func recIDs(recs []poll.DeadLetterRecord) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

// The per-item-commit alternative (benchmark only) commits every Save: a
// kill (no Sync, no Release) keeps the last one.
func TestCommitEveryItemCommitsEachSave(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "state.db")
	s, err := CommitEveryItemBackend.Open(ctx, p, nil)
	require.NoError(t, err)
	defer s.Close()
	l, err := s.Acquire(ctx, "c", "bench")
	require.NoError(t, err)
	for c := int64(1); c <= 3; c++ {
		require.NoError(t, l.Save(ctx, poll.Position{Cursor: c}))
	}
	plain, err := Open(ctx, p, nil)
	require.NoError(t, err)
	defer plain.Close()
	got, ok, err := plain.LoadDurable(ctx, "c")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, int64(3), got.Cursor)
	require.NoError(t, l.Sync(ctx))
	require.NoError(t, l.Release(ctx))
}

func BenchmarkSaveCommitEveryItem(b *testing.B) {
	contract.BenchSave(b, "sqlite-commit", func(path string) (poll.Store, error) {
		return CommitEveryItemBackend.Open(context.Background(), path, nil)
	})
}
