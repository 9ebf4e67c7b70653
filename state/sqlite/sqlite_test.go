package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state/contract"
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
