package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
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
		DropVolatile: contract.DropLockFiles,
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
	dir := b.TempDir()
	b.Run("baseline-os.WriteFile", func(b *testing.B) {
		p := filepath.Join(dir, "plain")
		for i := 0; i < b.N; i++ {
			if err := os.WriteFile(p, []byte(`{"cursor":`+strconv.Itoa(i)+`}`), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, sync := range []bool{false, true} {
		name := "sqlite-save"
		if sync {
			name = "sqlite-save+sync"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(context.Background(), filepath.Join(dir, name+".db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			l, _ := s.Acquire(context.Background(), "c", "r")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := l.Save(context.Background(), int64(i+1)); err != nil {
					b.Fatal(err)
				}
				if sync {
					if err := l.Sync(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
