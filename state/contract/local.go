package contract

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll"
)

// runLocal is the part of the suite for a store that is a file on this
// machine (Harness.Local): every name of the file shares one lease, and a
// lock file emptied or deleted under a holder never yields two holders, a
// crash or a lost cursor.
func runLocal(t *testing.T, h Harness, open func(*testing.T, string) poll.Store) {
	ctx := context.Background()
	t.Run("EveryNameOfTheFileSharesOneLease", func(t *testing.T) {
		loc := h.Fresh(t)
		dir, base := filepath.Dir(loc), filepath.Base(loc)
		holder := open(t, loc)
		l, err := holder.Acquire(ctx, connA, "holder")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release(ctx)
		if err := l.Save(ctx, poll.Position{Cursor: 5}); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(t.TempDir(), "link-to-"+base)
		if err := os.Symlink(loc, link); err != nil {
			t.Fatal(err)
		}
		dirLink := filepath.Join(t.TempDir(), "dir")
		if err := os.Symlink(dir, dirLink); err != nil {
			t.Fatal(err)
		}
		names := map[string]string{
			"symlink to the file":      link,
			"symlink to the directory": filepath.Join(dirLink, base),
			"dir/../dir":               filepath.Join(dir, "..", filepath.Base(dir), base),
		}
		if rel, err := filepath.Rel(mustGetwd(t), loc); err == nil {
			names["relative"] = rel
		}
		for what, name := range names {
			childMustBeRefused(t, name, what)
			// In this process too (another handle).
			if _, err := open(t, name).Acquire(ctx, connA, "other"); !errors.Is(err, poll.ErrLeaseHeld) {
				t.Errorf("%s (%s): want ErrLeaseHeld, got %v", what, name, err)
			}
		}
	})
	t.Run("BindMountOfTheDirectorySharesOneLease", func(t *testing.T) {
		loc := h.Fresh(t)
		l, err := open(t, loc).Acquire(ctx, connA, "holder")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release(ctx)
		other := bindMount(t, filepath.Dir(loc), t.TempDir())
		childMustBeRefused(t, filepath.Join(other, filepath.Base(loc)), "bind mount of the directory")
	})
	t.Run("BindMountOfTheFileSharesOneLease", func(t *testing.T) {
		if !h.FileIdentity {
			t.Skip("the backend replaces its state file on every write (rename), " +
				"which a bind mount of the file alone refuses (EBUSY): bind-mount its directory")
		}
		loc := h.Fresh(t)
		s := open(t, loc)
		l, err := s.Acquire(ctx, connA, "holder")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release(ctx)
		other := filepath.Join(t.TempDir(), filepath.Base(loc))
		if err := os.WriteFile(other, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		childMustBeRefused(t, bindMount(t, loc, other), "bind mount of the file")
	})
	t.Run("EmptiedLockFileCarriesOn", func(t *testing.T) {
		loc := h.Fresh(t)
		l := holding(t, open, loc, 3)
		for _, p := range lockFiles(t, loc) {
			if err := os.Truncate(p, 0); err != nil {
				t.Fatal(err)
			}
		}
		childMustBeRefused(t, loc, "emptied lock file")
		if err := l.Save(ctx, poll.Position{Cursor: 4}); err != nil {
			t.Fatalf("Save after the lock file was emptied: %v", err)
		}
		// Killed now (no Release): the next holder finds cursor 4.
		if c := loadAfterKill(t, h, open, loc, l); c != 4 {
			t.Fatalf("after a kill: cursor %d, want 4", c)
		}
	})
	t.Run("DeletedLockFileLosesTheLease", func(t *testing.T) {
		loc := h.Fresh(t)
		l := holding(t, open, loc, 3)
		for _, p := range lockFiles(t, loc) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		childMustBeRefused(t, loc, "deleted lock file")
		if err := l.Save(ctx, poll.Position{Cursor: 4}); !errors.Is(err, poll.ErrLeaseLost) {
			t.Fatalf("Save after the lock file was deleted: want ErrLeaseLost, got %v", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		l2, err := open(t, loc).Acquire(ctx, connA, "next")
		if err != nil {
			t.Fatal(err)
		}
		defer l2.Release(ctx)
		if p, _, err := l2.Load(ctx); err != nil || p.Cursor != 3 {
			t.Fatalf("after the lost lease: Load = %d, %v; want 3 (Release wrote what was delivered)", p.Cursor, err)
		}
	})
}

// childMustBeRefused starts a process that tries to take connA's lease on
// name; it must be refused as held.
func childMustBeRefused(t *testing.T, name, what string) {
	t.Helper()
	cmd, line := startChild(t, name)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !strings.Contains(line, poll.ErrLeaseHeld.Error()) {
		t.Errorf("%s (%s): another process got %q, want the lease refused as held", what, name, strings.TrimSpace(line))
	}
}

// loadAfterKill drops l as a killed process would (its locks, no Release)
// and returns the cursor the next holder loads. l must come from a handle
// of this process: its descriptors are closed through unlocker.
func loadAfterKill(t *testing.T, h Harness, open func(*testing.T, string) poll.Store, loc string, l poll.Lease) int64 {
	t.Helper()
	k, ok := l.(interface{ Kill() })
	if !ok {
		t.Fatalf("%T has no Kill (the local leases' test hook)", l)
	}
	k.Kill()
	l2, err := open(t, loc).Acquire(context.Background(), connA, "next")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Release(context.Background())
	p, _, err := l2.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p.Cursor
}

// bindMount mounts src on target (root only: the test skips otherwise),
// unmounted when the test ends.
func bindMount(t *testing.T, src, target string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root, for a bind mount", "run the tests as root, as CI does")
	}
	if err := syscall.Mount(src, target, "", syscall.MS_BIND, ""); err != nil {
		testenv.Missing(t, fmt.Sprintf("mount permission for a bind mount of %s on %s (%v)", src, target, err), "a container with CAP_SYS_ADMIN")
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(target, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", target, err)
		}
	})
	return target
}

func lockFiles(t *testing.T, loc string) []string {
	t.Helper()
	locks, _ := filepath.Glob(loc + ".lock-*")
	if len(locks) == 0 {
		t.Fatal("no lock file")
	}
	return locks
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// startChild starts a process that tries to take connA's lease on name
// (see the package's child hook) and returns it with the first line it
// printed: "held" when it got the lease, the error otherwise.
func startChild(t *testing.T, name string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childLocEnv+"="+name, childConnEnv+"="+connA)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	return cmd, line
}

// holding takes connA's lease on loc and saves cursors 1..n under it.
func holding(t *testing.T, open func(*testing.T, string) poll.Store, loc string, n int64) poll.Lease {
	t.Helper()
	l, err := open(t, loc).Acquire(context.Background(), connA, "holder")
	if err != nil {
		t.Fatal(err)
	}
	for c := int64(1); c <= n; c++ {
		if err := l.Save(context.Background(), poll.Position{Cursor: c}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}
