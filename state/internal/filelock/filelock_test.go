package filelock

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestMutualExclusion(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	var mu sync.Mutex
	inside := 0
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				l, err := Acquire(p)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				inside++
				if inside != 1 {
					t.Errorf("%d holders at once", inside)
				}
				mu.Unlock()
				time.Sleep(100 * time.Microsecond)
				mu.Lock()
				inside--
				mu.Unlock()
				_ = l.Unlock()
			}
		}()
	}
	wg.Wait()
	if _, err := Acquire(filepath.Join(t.TempDir(), "missing", "x")); err == nil {
		t.Fatal("missing dir must fail")
	}
}

// A lock held for ever (here by another open file description) fails the
// wait once the context is done, instead of blocking.
func TestAcquireContextGivesUp(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	held, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	l, err := AcquireContext(ctx, p)
	if err == nil {
		l.Unlock()
		t.Fatal("took a held lock")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's error, got %v", err)
	}
	held.Unlock()
	l, err = AcquireContext(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
}
