package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
