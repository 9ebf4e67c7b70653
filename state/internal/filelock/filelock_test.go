package filelock

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestExclusiveWithinProcessAndNote(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	a, err := TryLock(p, "run-a pid 1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = TryLock(p, "run-b")
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("want ErrLocked, got %v", err)
	}
	if got := err.Error(); got != "locked by another holder (run-a pid 1)" {
		t.Fatalf("holder note: %q", got)
	}
	if err := a.Unlock(); err != nil {
		t.Fatal(err)
	}
	b, err := TryLock(p, "run-b")
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Unlock()
	if _, err := TryLock(filepath.Join(t.TempDir(), "missing", "x"), ""); err == nil {
		t.Fatal("missing dir must fail")
	}
}
