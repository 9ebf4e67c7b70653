package filelock

import (
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
