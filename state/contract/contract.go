// Package contract is the test suite every poll.Store backend passes:
// cursor round trip, monotonic saves, durability across reopen, the refusal
// streak saved with the cursor, run statistics kept apart from it, lease
// exclusion (between handles, within one handle, under a race), several
// connections in one store, a lease freed by a dead process (SIGKILL) or by
// expiry, fencing of a run that lost its lease, and the cycle's Saver over
// the backend (coalescing with one Save in flight, never backwards nor past
// what was handed over, the final wait, a failed Save surfaced and ending
// saving, fencing after a lost or released lease).
//
// A backend's test calls Run with a Harness; backends whose leases are
// kernel locks also call ChildMain from TestMain so the suite can hold a
// lease in a child process and kill it.
package contract

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
)

// Harness describes a backend to the suite.
type Harness struct {
	// Fresh returns a new, empty storage location (a file path, a table).
	Fresh func(t *testing.T) string
	// Open opens a store on loc; every call returns an independent handle,
	// as another process would have. The suite closes the handles.
	Open func(t *testing.T, loc string) poll.Store
	// ChildProcess: the test binary calls ChildMain in TestMain, so the
	// suite can hold a lease in a child process and SIGKILL it.
	ChildProcess bool
	// Local: loc is the path of a file on this machine (with ChildProcess):
	// the suite checks that every name of it (symlinks, "..", a bind
	// mount) shares one lease, and what an emptied or deleted lock file
	// does to a holder. Its leases implement Kill (drop the locks as a
	// killed process would, without Release).
	Local bool
	// FileIdentity, with Local: the lease is tied to the state file's
	// identity (its inode) too, so a bind mount of the file alone shares it.
	FileIdentity bool
	// LeaseTTL > 0: leases expire after this long without renewal (the
	// suite then waits it out; keep it short in tests). Backends with
	// kernel locks leave it 0.
	LeaseTTL time.Duration
	// DropVolatile, when set, simulates power loss on loc: it throws away
	// whatever a Save keeps only in the page cache (for the local backends,
	// the lock files with the hot cursor). The suite then checks that Sync
	// made the cursor durable.
	DropVolatile func(t *testing.T, loc string)
	// DeleteStore, when set, deletes the state itself the way an operator
	// would (the state file, not the lock files beside it); the suite then
	// checks that no cursor survives it.
	DeleteStore func(t *testing.T, loc string)
	// StoreFiles, when set, lists the files that hold the state itself at
	// loc (not the lock files); the suite then checks that an empty cycle
	// (lease, cursor and statistics loaded, statistics saved, nothing
	// polled) leaves them byte-identical: it wrote, and so synced, nothing.
	StoreFiles func(loc string) []string
	// OpenStale, with LeaseTTL: opens a handle whose leases are never
	// renewed (a frozen or partitioned run). Default Open.
	OpenStale func(t *testing.T, loc string) poll.Store
}

const (
	childLocEnv  = "EDGEPOLL_CONTRACT_CHILD_LOC"
	childConnEnv = "EDGEPOLL_CONTRACT_CHILD_CONN"
)

// ChildMain, called first in a backend's TestMain, turns the test binary
// into a lease holder when the suite starts it as a child: it opens the
// store, takes the lease, says "held" and blocks until killed.
func ChildMain(open func(loc string) (poll.Store, error)) {
	loc := os.Getenv(childLocEnv)
	if loc == "" {
		return
	}
	s, err := open(loc)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	l, err := s.Acquire(context.Background(), os.Getenv(childConnEnv), "child")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	if err := l.Save(context.Background(), poll.Position{Cursor: 77}); err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	fmt.Println("held")
	select {}
}

// DropLockFiles is a DropVolatile for the local backends: it removes the
// per-connection lock files beside loc, which carry the hot cursor.
func DropLockFiles(t *testing.T, loc string) {
	locks, _ := filepath.Glob(loc + ".lock-*")
	if len(locks) == 0 {
		t.Fatal("no lock file to drop")
	}
	for _, l := range locks {
		if err := os.Remove(l); err != nil {
			t.Fatal(err)
		}
	}
}

const keyA = "iec1-connection-a"

// longName is the longest connection name a --config file may give.
var longName = "n" + strings.Repeat("a-", 31)

var (
	connA = poll.ConnectionID(keyA)
	connB = poll.ConnectionID("iec1-connection-b")
)

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	ctx := context.Background()
	open := func(t *testing.T, loc string) poll.Store {
		s := h.Open(t, loc)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	acquire := func(t *testing.T, s poll.Store, conn, owner string) poll.Lease {
		t.Helper()
		l, err := s.Acquire(ctx, conn, owner)
		if err != nil {
			t.Fatalf("Acquire(%s): %v", owner, err)
		}
		return l
	}
	mustLoadPos := func(t *testing.T, l poll.Lease, want poll.Position, wantOK bool) {
		t.Helper()
		got, ok, err := l.Load(ctx)
		if err != nil || got != want || ok != wantOK {
			t.Fatalf("Load = %+v, %v, %v; want %+v, %v", got, ok, err, want, wantOK)
		}
	}
	mustLoad := func(t *testing.T, l poll.Lease, want int64, wantOK bool) {
		t.Helper()
		mustLoadPos(t, l, poll.Position{Cursor: want}, wantOK)
	}
	mustSavePos := func(t *testing.T, l poll.Lease, p poll.Position) {
		t.Helper()
		if err := l.Save(ctx, p); err != nil {
			t.Fatalf("Save(%+v): %v", p, err)
		}
	}
	mustSave := func(t *testing.T, l poll.Lease, c int64) {
		t.Helper()
		mustSavePos(t, l, poll.Position{Cursor: c})
	}
	mustHeld := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, poll.ErrLeaseHeld) {
			t.Fatalf("want ErrLeaseHeld, got %v", err)
		}
	}

	t.Run("EmptyLoad", func(t *testing.T) {
		l := acquire(t, open(t, h.Fresh(t)), connA, "r1")
		defer l.Release(ctx)
		mustLoad(t, l, 0, false)
	})

	t.Run("RoundTripAcrossHandles", func(t *testing.T) {
		loc := h.Fresh(t)
		s1 := open(t, loc)
		l := acquire(t, s1, connA, "r1")
		mustSave(t, l, 5)
		mustLoad(t, l, 5, true)
		if err := l.Sync(ctx); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if err := s1.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		l2 := acquire(t, open(t, loc), connA, "r2")
		defer l2.Release(ctx)
		mustLoad(t, l2, 5, true)
	})

	t.Run("MonotonicSaves", func(t *testing.T) {
		loc := h.Fresh(t)
		l := acquire(t, open(t, loc), connA, "r1")
		mustSave(t, l, 10)
		mustSave(t, l, 7)
		mustSave(t, l, 10)
		mustLoad(t, l, 10, true)
		mustSave(t, l, 9_007_199_254_740_993) // beyond 2^53: no float rounding
		mustLoad(t, l, 9_007_199_254_740_993, true)
		_ = l.Release(ctx)
		l2 := acquire(t, open(t, loc), connA, "r2")
		defer l2.Release(ctx)
		mustLoad(t, l2, 9_007_199_254_740_993, true)
	})

	// The refusal streak (--skip-limit) travels with the cursor: counted
	// across runs, never ahead of or behind the cursor it belongs to.
	t.Run("RefusalsSavedWithTheCursor", func(t *testing.T) {
		loc := h.Fresh(t)
		s1 := open(t, loc)
		l := acquire(t, s1, connA, "run-1")
		mustSavePos(t, l, poll.Position{Cursor: 5, Refusals: 3})
		mustLoadPos(t, l, poll.Position{Cursor: 5, Refusals: 3}, true)
		mustSavePos(t, l, poll.Position{Cursor: 5, Refusals: 0}) // not past the cursor: ignored
		mustLoadPos(t, l, poll.Position{Cursor: 5, Refusals: 3}, true)
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s1.Close(); err != nil {
			t.Fatal(err)
		}
		// The next run carries the streak on and resets it on a delivery.
		l2 := acquire(t, open(t, loc), connA, "run-2")
		mustLoadPos(t, l2, poll.Position{Cursor: 5, Refusals: 3}, true)
		mustSavePos(t, l2, poll.Position{Cursor: 6, Refusals: 4})
		_ = l2.Release(ctx)
		l3 := acquire(t, open(t, loc), connA, "run-3")
		mustLoadPos(t, l3, poll.Position{Cursor: 6, Refusals: 4}, true)
		mustSavePos(t, l3, poll.Position{Cursor: 7, Refusals: 0})
		_ = l3.Release(ctx)
		l4 := acquire(t, open(t, loc), connA, "run-4")
		defer l4.Release(ctx)
		mustLoadPos(t, l4, poll.Position{Cursor: 7, Refusals: 0}, true)
	})

	// Run statistics (failure streak, last success, last delivery) survive
	// the run, belong to one connection and never create a cursor.
	t.Run("StatsAcrossRuns", func(t *testing.T) {
		loc := h.Fresh(t)
		l := acquire(t, open(t, loc), connA, "run-1")
		if st, err := l.LoadStats(ctx); err != nil || st != (poll.Stats{}) {
			t.Fatalf("LoadStats of a fresh store = %+v, %v; want zero", st, err)
		}
		success := time.Date(2026, 11, 26, 8, 0, 0, 123000000, time.UTC)
		want := poll.Stats{Failures: 0, LastSuccess: success, LastDelivery: success.Add(-time.Second)}
		if err := l.SaveStats(ctx, want); err != nil {
			t.Fatalf("SaveStats: %v", err)
		}
		want.Failures = 2
		if err := l.SaveStats(ctx, want); err != nil {
			t.Fatalf("SaveStats: %v", err)
		}
		mustLoad(t, l, 0, false) // statistics are not a cursor
		_ = l.Release(ctx)
		l2 := acquire(t, open(t, loc), connA, "run-2")
		defer l2.Release(ctx)
		mustLoad(t, l2, 0, false)
		got, err := l2.LoadStats(ctx)
		if err != nil || got.Failures != 2 || !got.LastSuccess.Equal(want.LastSuccess) || !got.LastDelivery.Equal(want.LastDelivery) {
			t.Fatalf("LoadStats = %+v, %v; want %+v", got, err, want)
		}
		lb := acquire(t, open(t, loc), connB, "run-b")
		defer lb.Release(ctx)
		if st, err := lb.LoadStats(ctx); err != nil || st != (poll.Stats{}) {
			t.Fatalf("another connection's LoadStats = %+v, %v; want zero", st, err)
		}
	})

	if h.StoreFiles != nil {
		t.Run("EmptyCycleWritesNothing", func(t *testing.T) {
			loc := h.Fresh(t)
			cycle := func(owner string, stats poll.Stats, move int64) poll.Stats {
				t.Helper()
				s := open(t, loc)
				l := acquire(t, s, connA, owner)
				if _, _, err := l.Load(ctx); err != nil {
					t.Fatalf("Load: %v", err)
				}
				got, err := l.LoadStats(ctx)
				if err != nil {
					t.Fatalf("LoadStats: %v", err)
				}
				if move > 0 {
					mustSave(t, l, move)
				}
				if err := l.SaveStats(ctx, stats); err != nil {
					t.Fatalf("SaveStats: %v", err)
				}
				if err := l.Release(ctx); err != nil {
					t.Fatalf("Release: %v", err)
				}
				if err := s.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				return got
			}
			snapshot := func() map[string]string {
				m := map[string]string{}
				for _, p := range h.StoreFiles(loc) {
					b, err := os.ReadFile(p)
					if err != nil && !errors.Is(err, os.ErrNotExist) {
						t.Fatal(err)
					}
					m[p] = string(b)
				}
				return m
			}
			at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
			cycle("run-1", poll.Stats{LastSuccess: at}, 0) // the first statistics
			cycle("run-2", poll.Stats{LastSuccess: at.Add(time.Second), LastDelivery: at}, 4)
			before := snapshot()
			empty := poll.Stats{LastSuccess: at.Add(2 * time.Second), LastDelivery: at}
			cycle("run-3", empty, 0)
			after := snapshot()
			for p := range before {
				if before[p] != after[p] {
					t.Errorf("an empty cycle changed %s", filepath.Base(p))
				}
			}
			got := cycle("run-4", poll.Stats{Failures: 1, LastSuccess: empty.LastSuccess, LastDelivery: at}, 0)
			if !got.LastSuccess.Equal(empty.LastSuccess) || !got.LastDelivery.Equal(at) || got.Failures != 0 {
				t.Fatalf("after an empty cycle LoadStats = %+v; want %+v", got, empty)
			}
			if got := cycle("run-5", empty, 0); got.Failures != 1 {
				t.Fatalf("LoadStats = %+v; want the failure streak of the run before", got)
			}
			// The next durable write of the cursor (here the one at Release,
			// after the statistics were saved) carries the latest statistics:
			// they survive losing the lock files (a power loss).
			six := poll.Stats{Failures: 5, LastSuccess: at}
			cycle("run-6", six, 9)
			if h.DropVolatile != nil {
				h.DropVolatile(t, loc)
				if got := cycle("run-7", empty, 0); !got.LastSuccess.Equal(six.LastSuccess) || got.Failures != six.Failures || !got.LastDelivery.IsZero() {
					t.Fatalf("after losing the lock files LoadStats = %+v; want %+v", got, six)
				}
			}
			s := open(t, loc)
			l := acquire(t, s, connA, "check")
			defer l.Release(ctx)
			mustLoad(t, l, 9, true)
		})
	}

	if h.DropVolatile != nil {
		t.Run("SyncSurvivesPowerLoss", func(t *testing.T) {
			loc := h.Fresh(t)
			l := acquire(t, open(t, loc), connA, "r1")
			mustSavePos(t, l, poll.Position{Cursor: 5, Refusals: 2})
			if err := l.Sync(ctx); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			mustSave(t, l, 9) // not synced: may be lost with power
			h.DropVolatile(t, loc)
			l2 := acquire(t, open(t, loc), connA, "after-power-loss")
			defer l2.Release(ctx)
			got, _, err := l2.Load(ctx)
			if err != nil || (got != poll.Position{Cursor: 5, Refusals: 2} && got != poll.Position{Cursor: 9}) {
				t.Fatalf("after power loss: %+v, %v; want the synced 5 with its 2 refusals (or the later 9)", got, err)
			}
		})
	}

	t.Run("OperatorInspectSetReset", func(t *testing.T) {
		loc := h.Fresh(t)
		s1, s2 := open(t, loc), open(t, loc)
		insp, ok := s2.(poll.Inspector)
		if !ok {
			t.Fatal("the store does not implement poll.Inspector")
		}
		inspect := func(t *testing.T) poll.StateInfo {
			t.Helper()
			info, err := insp.Inspect(ctx, connA)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			return info
		}
		if info := inspect(t); info.HasCursor || info.Lease.Held {
			t.Fatalf("fresh store: %+v", info)
		}
		l := acquire(t, s1, connA, "run-holder")
		mustSave(t, l, 40)
		if err := l.Sync(ctx); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		info := inspect(t)
		if !info.HasCursor || info.Cursor != 40 || info.UpdatedAt.IsZero() || !info.Lease.Held || !strings.Contains(info.Lease.Holder, "run-holder") {
			t.Fatalf("while held: %+v", info)
		}
		mustSave(t, l, 41) // inspecting did not disturb the holder
		if err := l.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if info := inspect(t); info.Lease.Held || info.Cursor != 41 {
			t.Fatalf("after release: %+v", info)
		}

		op := acquire(t, s2, connA, "operator")
		set, ok := op.(poll.CursorSetter)
		if !ok {
			t.Fatal("the lease does not implement poll.CursorSetter")
		}
		if err := set.SetCursor(ctx, 5); err != nil { // backwards
			t.Fatalf("SetCursor: %v", err)
		}
		_ = op.Release(ctx)
		l = acquire(t, open(t, loc), connA, "r2")
		mustLoad(t, l, 5, true)
		mustSave(t, l, 6)
		if err := l.(poll.CursorSetter).ResetCursor(ctx); err != nil {
			t.Fatalf("ResetCursor: %v", err)
		}
		_ = l.Release(ctx)
		l = acquire(t, open(t, loc), connA, "r3")
		mustLoad(t, l, 0, false)
		_ = l.Release(ctx)
		if info := inspect(t); info.HasCursor || info.Lease.Held {
			t.Fatalf("after reset: %+v", info)
		}
	})

	if h.DeleteStore != nil {
		t.Run("DeletedStoreLeavesNoCursor", func(t *testing.T) {
			loc := h.Fresh(t)
			s1 := open(t, loc)
			l := acquire(t, s1, connA, "r1")
			mustSave(t, l, 40)
			_ = l.Release(ctx)
			_ = s1.Close()
			h.DeleteStore(t, loc)
			l = acquire(t, open(t, loc), connA, "r2")
			defer l.Release(ctx)
			mustLoad(t, l, 0, false)
		})
	}

	t.Run("LeaseExclusionBetweenHandles", func(t *testing.T) {
		loc := h.Fresh(t)
		s1, s2 := open(t, loc), open(t, loc)
		l1 := acquire(t, s1, connA, "r1")
		_, err := s2.Acquire(ctx, connA, "r2")
		mustHeld(t, err)
		if err := l1.Release(ctx); err != nil {
			t.Fatal(err)
		}
		l2 := acquire(t, s2, connA, "r2")
		_ = l2.Release(ctx)
	})

	t.Run("LeaseExclusionWithinOneHandle", func(t *testing.T) {
		s := open(t, h.Fresh(t))
		l := acquire(t, s, connA, "r1")
		defer l.Release(ctx)
		_, err := s.Acquire(ctx, connA, "r2")
		mustHeld(t, err)
	})

	t.Run("SaveAfterReleaseFails", func(t *testing.T) {
		l := acquire(t, open(t, h.Fresh(t)), connA, "r1")
		mustSave(t, l, 3)
		_ = l.Release(ctx)
		if err := l.Save(ctx, poll.Position{Cursor: 4}); err == nil {
			t.Fatal("Save after Release must fail: the write would not be fenced")
		}
	})

	t.Run("ConnectionsAreIndependent", func(t *testing.T) {
		loc := h.Fresh(t)
		s1, s2 := open(t, loc), open(t, loc)
		la := acquire(t, s1, connA, "ra")
		lb := acquire(t, s2, connB, "rb") // A's lease does not block B
		mustSave(t, la, 100)
		mustSave(t, lb, 3)
		mustSave(t, la, 101)
		mustLoad(t, la, 101, true)
		mustLoad(t, lb, 3, true)
		_ = la.Release(ctx)
		_ = lb.Release(ctx)
		l := acquire(t, open(t, loc), connB, "r3")
		defer l.Release(ctx)
		mustLoad(t, l, 3, true)
	})

	t.Run("SharedKeyCursorsAreIndependent", func(t *testing.T) {
		// Fan-out: connections sharing one connector key keep their own
		// cursor and lease under poll.CursorID, apart from the key's plain
		// one (the longest name a connection may have included).
		loc := h.Fresh(t)
		named := []string{connA, poll.CursorID(keyA, "tickets"), poll.CursorID(keyA, longName)}
		leases := make([]poll.Lease, len(named))
		for i, conn := range named {
			leases[i] = acquire(t, open(t, loc), conn, fmt.Sprintf("fan-%d", i)) // none blocks another
		}
		for i, l := range leases {
			mustSave(t, l, int64(10*(i+1)))
		}
		mustSave(t, leases[1], 25)
		for i, l := range leases {
			want := int64(10 * (i + 1))
			if i == 1 {
				want = 25
			}
			mustLoad(t, l, want, true)
			if err := l.Sync(ctx); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			_ = l.Release(ctx)
		}
		s := open(t, loc)
		insp := s.(poll.Inspector)
		for i, conn := range named {
			want := int64(10 * (i + 1))
			if i == 1 {
				want = 25
			}
			info, err := insp.Inspect(ctx, conn)
			if err != nil || !info.HasCursor || info.Cursor != want {
				t.Fatalf("Inspect(%s) = %+v, %v; want cursor %d", conn, info, err, want)
			}
			l := acquire(t, s, conn, "reopen")
			mustLoad(t, l, want, true)
			_ = l.Release(ctx)
		}
		l := acquire(t, s, poll.CursorID(keyA, "fresh"), "fresh")
		defer l.Release(ctx)
		mustLoad(t, l, 0, false) // no fallback in the store: the cycle does it
	})

	t.Run("NewSharerStartsFromTheKeysCursor", func(t *testing.T) {
		sharerCycleContract(t, h.Fresh, open, acquire)
	})

	t.Run("AcquireRace", func(t *testing.T) {
		loc := h.Fresh(t)
		const n = 8
		stores := make([]poll.Store, n)
		for i := range stores {
			stores[i] = open(t, loc)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []poll.Lease
		start := make(chan struct{})
		for i := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l, err := stores[i].Acquire(ctx, connA, fmt.Sprintf("racer-%d", i))
				if err == nil {
					mu.Lock()
					won = append(won, l)
					mu.Unlock()
				} else if !errors.Is(err, poll.ErrLeaseHeld) {
					t.Errorf("racer %d: %v", i, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("%d racers won the lease, want exactly 1", len(won))
		}
		_ = won[0].Release(ctx)
	})

	runSaver(t, h, open, func(t *testing.T, s poll.Store, conn, owner string) poll.Lease {
		t.Helper()
		return acquire(t, s, conn, owner)
	}, mustLoad)

	if h.ChildProcess {
		t.Run("LeaseFreedWhenHolderIsKilled", func(t *testing.T) {
			loc := h.Fresh(t)
			cmd, line := startChild(t, loc)
			if strings.TrimSpace(line) != "held" {
				_ = cmd.Process.Kill()
				t.Fatalf("child: %q", line)
			}
			s := open(t, loc)
			_, err := s.Acquire(ctx, connA, "parent")
			mustHeld(t, err)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			var l poll.Lease
			deadline := time.Now().Add(5 * time.Second)
			for {
				l, err = s.Acquire(ctx, connA, "parent")
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("lease of a killed holder not freed: %v", err)
			}
			defer l.Release(ctx)
			mustLoad(t, l, 77, true) // what the child saved before dying
		})
	}

	if h.Local && h.ChildProcess {
		runLocal(t, h, open)
	}

	if h.LeaseTTL > 0 {
		t.Run("ExpiredLeaseTakenOverAndStaleWriterFenced", func(t *testing.T) {
			loc := h.Fresh(t)
			s1, s2 := open(t, loc), open(t, loc)
			if h.OpenStale != nil {
				s1 = h.OpenStale(t, loc)
				t.Cleanup(func() { _ = s1.Close() })
			}
			stale := acquire(t, s1, connA, "stale")
			mustSave(t, stale, 10)
			if _, err := s2.Acquire(ctx, connA, "fresh"); !errors.Is(err, poll.ErrLeaseHeld) {
				t.Fatalf("before expiry: want ErrLeaseHeld, got %v", err)
			}
			var fresh poll.Lease
			deadline := time.Now().Add(h.LeaseTTL*3 + 5*time.Second)
			for {
				l, err := s2.Acquire(ctx, connA, "fresh")
				if err == nil {
					fresh = l
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("expired lease never taken over: %v", err)
				}
				time.Sleep(h.LeaseTTL / 10)
			}
			defer fresh.Release(ctx)
			mustLoad(t, fresh, 10, true)
			mustSave(t, fresh, 20)
			if err := stale.Save(ctx, poll.Position{Cursor: 30}); !errors.Is(err, poll.ErrLeaseLost) {
				t.Fatalf("stale owner's Save: want ErrLeaseLost, got %v", err)
			}
			_ = stale.Release(ctx) // must not free the fresh owner's lease
			if _, err := s1.Acquire(ctx, connA, "third"); !errors.Is(err, poll.ErrLeaseHeld) {
				t.Fatalf("stale Release freed the new owner's lease: %v", err)
			}
			mustLoad(t, fresh, 20, true)
		})
	}
}

// recordingLease wraps a backend's lease for the Saver tests: it records
// every Save, counts the Saves in flight, and can hold Saves at a gate or
// fail one. It is not a CheapSaver, so a Saver runs it as a remote lease
// (one Save in flight, coalescing).
type recordingLease struct {
	poll.Lease
	mu          sync.Mutex
	calls       []int64
	inflight    int
	maxInflight int
	gate        chan struct{} // non-nil: every Save waits until it is closed
	entered     chan int64    // non-nil: told each Save's cursor as it starts
	failAt      int64         // a Save of this cursor fails
}

var errInjected = errors.New("injected save failure")

func (r *recordingLease) Save(ctx context.Context, p poll.Position) error {
	c := p.Cursor
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.inflight++
	r.maxInflight = max(r.maxInflight, r.inflight)
	gate, fail := r.gate, r.failAt != 0 && c == r.failAt
	r.mu.Unlock()
	if r.entered != nil {
		r.entered <- c
	}
	defer func() {
		r.mu.Lock()
		r.inflight--
		r.mu.Unlock()
	}()
	if gate != nil {
		<-gate
	}
	if fail {
		return errInjected
	}
	return r.Lease.Save(ctx, p)
}

func (r *recordingLease) saves() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.calls...)
}

// runSaver runs the Saver tests: the cycle's one saver per lease, over this
// backend.
func runSaver(t *testing.T, h Harness, open func(*testing.T, string) poll.Store,
	acquire func(*testing.T, poll.Store, string, string) poll.Lease,
	mustLoad func(*testing.T, poll.Lease, int64, bool)) {
	ctx := context.Background()
	// within fails t if f has not returned in a generous time (it would be
	// waiting on a held Save): a deadlock guard, not a timing assertion.
	within := func(t *testing.T, what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s waited for a Save in flight", what)
		}
	}

	t.Run("SaverThroughTheBackend", func(t *testing.T) {
		loc := h.Fresh(t)
		l := acquire(t, open(t, loc), connA, "r1")
		sv := poll.NewSaver(ctx, l, 0, nil)
		defer sv.Close()
		for c := int64(1); c <= 50; c++ {
			if err := sv.Advance(poll.Position{Cursor: c, Refusals: int(c % 4)}); err != nil {
				t.Fatalf("Advance(%d): %v", c, err)
			}
		}
		want := poll.Position{Cursor: 50, Refusals: 2}
		got, err := sv.Wait()
		if err != nil || got != want {
			t.Fatalf("Wait = %+v, %v; want %+v", got, err, want)
		}
		_ = l.Release(ctx)
		l2 := acquire(t, open(t, loc), connA, "r2")
		defer l2.Release(ctx)
		if got, ok, err := l2.Load(ctx); err != nil || !ok || got != want {
			t.Fatalf("Load = %+v, %v, %v; want %+v: the refusal streak travels with the cursor", got, ok, err, want)
		}
	})

	t.Run("SaverCoalescesWithOneSaveInFlight", func(t *testing.T) {
		loc := h.Fresh(t)
		rl := &recordingLease{Lease: acquire(t, open(t, loc), connA, "r1"), gate: make(chan struct{}), entered: make(chan int64, 10)}
		sv := poll.NewSaver(ctx, rl, 0, nil)
		defer sv.Close()
		within(t, "Advance", func() {
			if err := sv.Advance(poll.Position{Cursor: 1}); err != nil {
				t.Error(err)
			}
		})
		if c := <-rl.entered; c != 1 {
			t.Fatalf("first Save of %d, want 1", c)
		}
		within(t, "Advance", func() {
			for c := int64(2); c <= 100; c++ {
				if err := sv.Advance(poll.Position{Cursor: c}); err != nil {
					t.Errorf("Advance(%d): %v", c, err)
				}
			}
		})
		if got := rl.saves(); len(got) != 1 || got[0] != 1 {
			t.Fatalf("while the first Save is held: Saves %v, want [1]", got)
		}
		close(rl.gate)
		got, err := sv.Wait()
		if err != nil || got.Cursor != 100 {
			t.Fatalf("Wait = %d, %v; want 100", got, err)
		}
		if calls := rl.saves(); len(calls) != 2 || calls[1] != 100 {
			t.Fatalf("Saves %v; want [1 100]: everything handed over during the first Save coalesced into one", calls)
		}
		if rl.maxInflight != 1 {
			t.Fatalf("%d Saves in flight at once, want 1", rl.maxInflight)
		}
		// The final wait: what Wait returned is stored.
		_ = rl.Release(ctx)
		l2 := acquire(t, open(t, loc), connA, "r2")
		defer l2.Release(ctx)
		mustLoad(t, l2, 100, true)
	})

	t.Run("SaverNeverBackwardsNorPastWhatWasHandedOver", func(t *testing.T) {
		loc := h.Fresh(t)
		rl := &recordingLease{Lease: acquire(t, open(t, loc), connA, "r1")}
		defer rl.Release(ctx)
		sv := poll.NewSaver(ctx, rl, 0, nil)
		defer sv.Close()
		handed := map[int64]bool{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for g := int64(0); g < 4; g++ { // reporters racing, as a pipelined sink's are
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := g + 1; c <= 400; c += 4 {
					mu.Lock()
					handed[c] = true
					mu.Unlock()
					if err := sv.Advance(poll.Position{Cursor: c}); err != nil {
						t.Errorf("Advance(%d): %v", c, err)
					}
				}
			}()
		}
		wg.Wait()
		got, err := sv.Wait()
		if err != nil || got.Cursor != 400 {
			t.Fatalf("Wait = %d, %v; want 400", got, err)
		}
		var prev int64
		for _, c := range rl.saves() {
			if c <= prev {
				t.Fatalf("Save(%d) after Save(%d): saves never go backwards (%v)", c, prev, rl.saves())
			}
			if !handed[c] {
				t.Fatalf("Save(%d) of a cursor never handed over", c)
			}
			prev = c
		}
		if rl.maxInflight != 1 {
			t.Fatalf("%d Saves in flight at once, want 1", rl.maxInflight)
		}
		if err := sv.Advance(poll.Position{Cursor: 10}); err != nil { // lower than saved: no Save
			t.Fatal(err)
		}
		n := len(rl.saves())
		if _, err := sv.Wait(); err != nil || len(rl.saves()) != n {
			t.Fatalf("a lower cursor was saved (%v) or failed: %v", rl.saves(), err)
		}
		mustLoad(t, rl, 400, true)
	})

	t.Run("SaverSurfacesAFailedSaveAndStops", func(t *testing.T) {
		loc := h.Fresh(t)
		rl := &recordingLease{Lease: acquire(t, open(t, loc), connA, "r1"), failAt: 7}
		defer rl.Release(ctx)
		sv := poll.NewSaver(ctx, rl, 0, nil)
		defer sv.Close()
		for c := int64(1); c <= 7; c++ {
			_ = sv.Advance(poll.Position{Cursor: c})
			if _, err := sv.Wait(); (err != nil) != (c == 7) {
				t.Fatalf("Wait after Advance(%d): %v", c, err)
			}
		}
		n := len(rl.saves())
		if err := sv.Advance(poll.Position{Cursor: 8}); !errors.Is(err, errInjected) {
			t.Fatalf("Advance after a failed Save: %v, want the Save's error", err)
		}
		got, err := sv.Wait()
		if !errors.Is(err, errInjected) || got.Cursor != 6 {
			t.Fatalf("Wait = %d, %v; want 6 and the Save's error", got, err)
		}
		if len(rl.saves()) != n {
			t.Fatalf("saved again after a failed Save: %v", rl.saves())
		}
		mustLoad(t, rl, 6, true)
	})

	t.Run("SaverFencedAfterRelease", func(t *testing.T) {
		l := acquire(t, open(t, h.Fresh(t)), connA, "r1")
		sv := poll.NewSaver(ctx, l, 0, nil)
		defer sv.Close()
		_ = sv.Advance(poll.Position{Cursor: 3})
		if _, err := sv.Wait(); err != nil {
			t.Fatal(err)
		}
		_ = l.Release(ctx)
		_ = sv.Advance(poll.Position{Cursor: 4})
		if got, err := sv.Wait(); err == nil || got.Cursor != 3 {
			t.Fatalf("Wait after the lease was released = %d, %v; want 3 and an error", got, err)
		}
	})

	if h.LeaseTTL > 0 {
		t.Run("SaverOfALostLeaseIsFenced", func(t *testing.T) {
			loc := h.Fresh(t)
			s1 := open(t, loc)
			if h.OpenStale != nil {
				s1 = h.OpenStale(t, loc)
				t.Cleanup(func() { _ = s1.Close() })
			}
			stale := &recordingLease{Lease: acquire(t, s1, connA, "stale")}
			sv := poll.NewSaver(ctx, stale, 0, nil)
			defer sv.Close()
			_ = sv.Advance(poll.Position{Cursor: 10})
			if _, err := sv.Wait(); err != nil {
				t.Fatal(err)
			}
			s2 := open(t, loc)
			var fresh poll.Lease
			deadline := time.Now().Add(h.LeaseTTL*3 + 5*time.Second)
			for fresh == nil {
				l, err := s2.Acquire(ctx, connA, "fresh")
				if err == nil {
					fresh = l
				} else if time.Now().After(deadline) {
					t.Fatalf("expired lease never taken over: %v", err)
				} else {
					time.Sleep(h.LeaseTTL / 10)
				}
			}
			defer fresh.Release(ctx)
			if err := fresh.Save(ctx, poll.Position{Cursor: 20}); err != nil {
				t.Fatal(err)
			}
			_ = sv.Advance(poll.Position{Cursor: 30})
			if got, err := sv.Wait(); !errors.Is(err, poll.ErrLeaseLost) || got.Cursor != 10 {
				t.Fatalf("stale Saver: Wait = %d, %v; want 10 and ErrLeaseLost", got, err)
			}
			n := len(stale.saves())
			if err := sv.Advance(poll.Position{Cursor: 40}); !errors.Is(err, poll.ErrLeaseLost) {
				t.Fatalf("Advance after the lease was lost: %v", err)
			}
			if _, err := sv.Wait(); err == nil || len(stale.saves()) != n {
				t.Fatalf("the stale Saver saved again: %v", stale.saves())
			}
			mustLoad(t, fresh, 20, true)
		})
	}
}

// BenchSave measures Save per item and Save+Sync (a batch of one) for a
// local backend, against os.WriteFile of a small file in the same run.
// open opens a store on a fresh path.
func BenchSave(b *testing.B, name string, open func(path string) (poll.Store, error)) {
	dir := b.TempDir()
	b.Run("baseline-os.WriteFile", func(b *testing.B) {
		p := filepath.Join(dir, "plain")
		for i := 0; i < b.N; i++ {
			if err := os.WriteFile(p, []byte(fmt.Sprintf(`{"cursor":%d}`, i)), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	})
	runs := 0
	for _, sync := range []bool{false, true} {
		sub := name + "-save"
		if sync {
			sub += "+sync"
		}
		b.Run(sub, func(b *testing.B) {
			// A fresh store for every run: the testing package runs this
			// function several times while it sizes b.N, and a store kept
			// from an earlier run would turn the monotonic saves of cursors
			// 1..N into no-ops, skewing the estimate of b.N (a run of 10^6
			// fsyncs instead of a second).
			runs++
			s, err := open(filepath.Join(dir, fmt.Sprintf("%s-%d", sub, runs)))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			l, err := s.Acquire(context.Background(), "c", "bench")
			if err != nil {
				b.Fatal(err)
			}
			defer l.Release(context.Background())
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := l.Save(context.Background(), poll.Position{Cursor: int64(i + 1)}); err != nil {
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
