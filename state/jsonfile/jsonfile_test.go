package jsonfile

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	"github.com/edgepoll/edgepoll/state/internal/filelock"
)

const writerEnv = "EDGEPOLL_JSONFILE_WRITER"

func TestMain(m *testing.M) {
	contract.ChildMain(func(loc string) (poll.Store, error) { return Open(context.Background(), loc, nil) })
	if spec := os.Getenv(writerEnv); spec != "" { // loc|conn|n: save and sync 1..n
		parts := strings.Split(spec, "|")
		n, _ := strconv.Atoi(parts[2])
		s, err := Open(context.Background(), parts[0], nil)
		if err != nil {
			fmt.Println(err)
			os.Exit(3)
		}
		l, err := s.Acquire(context.Background(), parts[1], "writer")
		if err != nil {
			fmt.Println(err)
			os.Exit(3)
		}
		for i := 1; i <= n; i++ {
			if err := l.Save(context.Background(), poll.Position{Cursor: int64(i)}); err != nil {
				fmt.Println(err)
				os.Exit(3)
			}
			// A durable write of the shared file: a read-modify-write of
			// every connection's entry under PATH.lock.
			if err := l.Sync(context.Background()); err != nil {
				fmt.Println(err)
				os.Exit(3)
			}
		}
		if err := l.Release(context.Background()); err != nil {
			fmt.Println(err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestContract(t *testing.T) {
	contract.Run(t, contract.Harness{
		Fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "state.json") },
		Open: func(t *testing.T, loc string) poll.Store {
			s, err := Open(context.Background(), loc, nil)
			require.NoError(t, err)
			return s
		},
		ChildProcess: true,
		Local:        true,
		DropVolatile: contract.DropLockFiles,
		StoreFiles:   func(loc string) []string { return []string{loc} },
		DeleteStore: func(t *testing.T, loc string) {
			for _, p := range []string{loc} {
				_ = os.Remove(p)
			}
		},
	})
}

func TestCorruptOrUnreadableIsAnError(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"truncated": `{"version":1,"cursors":{"a":{"cursor":`,
		"garbage":   "\x00\x01garbage",
		"array":     `[1,2]`,
		"version":   `{"version":9,"cursors":{}}`,
		"wrongtype": `{"version":1,"cursors":{"a":{"cursor":"12"}}}`,
		"trailing":  `{"version":1,"cursors":{}} {}`,
	} {
		p := filepath.Join(dir, name+".json")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		_, err := Open(context.Background(), p, nil)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), p)
	}
	// A directory where the file should be.
	p := filepath.Join(dir, "isdir.json")
	require.NoError(t, os.Mkdir(p, 0o755))
	_, err := Open(context.Background(), p, nil)
	assert.Error(t, err)
	_, err = Open(context.Background(), filepath.Join(dir, "missing", "x.json"), nil)
	assert.Error(t, err)
}

func TestCorruptedAfterOpenFailsSaveNotReset(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.json")
	s, err := Open(context.Background(), p, nil)
	require.NoError(t, err)
	l, err := s.Acquire(context.Background(), "c", "r")
	require.NoError(t, err)
	require.NoError(t, l.Save(context.Background(), poll.Position{Cursor: 5}))
	require.NoError(t, os.WriteFile(p, []byte("{"), 0o644))
	require.NoError(t, l.Save(context.Background(), poll.Position{Cursor: 6})) // the hot cursor lives in the lock file
	assert.Error(t, l.Sync(context.Background()), "the durable write refuses to overwrite a corrupt file")
	_, _, err = l.Load(context.Background())
	assert.Error(t, err)
	b, _ := os.ReadFile(p)
	assert.Equal(t, "{", string(b), "a corrupt file is left for the operator, not overwritten")
}

func TestFileIsReadableJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.json")
	s, _ := Open(context.Background(), p, nil)
	l, _ := s.Acquire(context.Background(), "conn-a", "r")
	require.NoError(t, l.Save(context.Background(), poll.Position{Cursor: 9_007_199_254_740_993}))
	require.NoError(t, l.Sync(context.Background()))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"cursor": 9007199254740993`)
	assert.Contains(t, string(b), `"version": 1`)
	entries, _ := os.ReadDir(filepath.Dir(p))
	for _, e := range entries {
		assert.False(t, strings.Contains(e.Name(), ".tmp-"), "no temp file left: %s", e.Name())
	}
}

// Several processes, each with its own connection, saving into one file at
// the same time: no update is lost.
func TestConcurrentProcessesShareOneFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "shared.json")
	const procs, n = 4, 60
	var wg sync.WaitGroup
	for i := 0; i < procs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|conn-%d|%d", writerEnv, p, i, n))
			out, err := cmd.CombinedOutput()
			assert.NoError(t, err, string(out))
		}()
	}
	wg.Wait()
	// Every writer rewrote the one shared file n times, each a
	// read-modify-write of all connections: an update lost to a concurrent
	// writer (no lock, a stale read) would leave a connection behind. The
	// durable file itself is read, not the hot cursors in the lock files.
	s, err := Open(context.Background(), p, nil)
	require.NoError(t, err)
	for i := 0; i < procs; i++ {
		c, ok, err := s.LoadDurable(context.Background(), fmt.Sprintf("conn-%d", i))
		require.NoError(t, err)
		assert.True(t, ok, "conn-%d in the shared file", i)
		assert.Equal(t, int64(n), c.Cursor, "conn-%d", i)
	}
}

func BenchmarkSave(b *testing.B) {
	contract.BenchSave(b, "jsonfile", func(path string) (poll.Store, error) { return Open(context.Background(), path, nil) })
}

// Temp files of runs killed in the middle of a write are removed at open,
// under the file lock (so never one being written); other files stay.
func TestOpenRemovesStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	stale := []string{".state.json.tmp-123", ".state.json.tmp-abc"}
	keep := []string{".other.json.tmp-1", "state.json.tmp-1", ".state.json.tmpx"}
	for _, n := range append(append([]string{}, stale...), keep...) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("{"), 0o600))
	}

	// While another process holds the file lock, nothing is removed.
	lk, err := filelock.Acquire(p + ".lock")
	require.NoError(t, err)
	_, err = Open(context.Background(), p, nil)
	require.NoError(t, err)
	for _, n := range stale {
		assert.FileExists(t, filepath.Join(dir, n))
	}
	require.NoError(t, lk.Unlock())

	_, err = Open(context.Background(), p, nil)
	require.NoError(t, err)
	for _, n := range stale {
		assert.NoFileExists(t, filepath.Join(dir, n))
	}
	for _, n := range keep {
		assert.FileExists(t, filepath.Join(dir, n))
	}
}

// A durable write waits for the file lock only until its context is done.
func TestSaveGivesUpOnAHeldLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	s, err := Open(context.Background(), p, nil)
	require.NoError(t, err)
	lk, err := filelock.Acquire(p + ".lock")
	require.NoError(t, err)
	defer lk.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.SaveDurable(ctx, "c", poll.Position{Cursor: 5}, nil) }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "waiting for the lock")
	case <-time.After(30 * time.Second):
		t.Fatal("SaveDurable ignored its context while the lock was held")
	}
}

func TestDeadLetterContract(t *testing.T) {
	contract.RunDeadLetter(t, contract.DeadLetterHarness{
		Fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "state.json") },
		Open: func(t *testing.T, loc string) state.DeadLetter {
			d, err := deadletter.OpenInState(context.Background(), Backend, loc, nil)
			require.NoError(t, err)
			return d
		},
	})
}
