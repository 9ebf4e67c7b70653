package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gatedTarget is a target whose second request waits until open is
// called (the first run is then mid-delivery for as long as the test
// needs), and that records the most requests it ever had in flight at
// once: one deliverer at a time means 1.
type gatedTarget struct {
	*target
	second    chan struct{} // closed when the second request arrived
	gate      chan struct{}
	cur, most atomic.Int32
	n         atomic.Int32
	once      sync.Once
}

func newGatedTarget(t *testing.T) *gatedTarget {
	g := &gatedTarget{second: make(chan struct{}), gate: make(chan struct{})}
	g.target = newTargetWrapped(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := g.cur.Add(1)
			defer g.cur.Add(-1)
			for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
			}
			if g.n.Add(1) == 2 {
				close(g.second)
				<-g.gate
			}
			h.ServeHTTP(w, r)
		})
	})
	t.Cleanup(g.open)
	return g
}

func (g *gatedTarget) open() { g.once.Do(func() { close(g.gate) }) }

// startRun starts a one-shot run delivering to g and waits until its
// second delivery waits at the gate (the first one's cursor saved); wait
// returns its exit code and stderr.
func startRun(t *testing.T, e *env, g *gatedTarget, state string) (wait func() (int, string)) {
	t.Helper()
	cmd := exec.Command(edgepollBin(t), "--mode", "http", "--http-url", g.srv.URL, "--state", state)
	cmd.Env = e.vars()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	select {
	case <-g.second:
	case <-done:
		t.Fatalf("the first run ended before its second delivery: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("the first run never reached its second delivery")
	}
	return func() (int, string) {
		<-done
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
}

func noItemTwice(t *testing.T, got []int64) {
	t.Helper()
	seen := map[int64]bool{}
	for _, id := range got {
		require.False(t, seen[id], "item %d delivered twice: %v", id, got)
		seen[id] = true
	}
}

// Two --state paths that name one file (a symlink to it, to its directory,
// dir/../dir) share one lease: while a run delivers, each other name is
// refused as "lease held", and no item is delivered twice.
func TestStateNamesOfOneFileShareOneLease(t *testing.T) {
	for _, backend := range stateBackends {
		t.Run(backend, func(t *testing.T) {
			const n = 40
			e := newEnv(t, n)
			tg := newGatedTarget(t)
			file := filepath.Join(e.dir, "state."+backend)
			wait := startRun(t, e, tg, backend+":"+file)
			links := t.TempDir()
			require.NoError(t, os.Symlink(file, filepath.Join(links, "s")))
			require.NoError(t, os.Symlink(e.dir, filepath.Join(links, "d")))
			for _, name := range []string{
				filepath.Join(links, "s"),
				filepath.Join(links, "d", "state."+backend),
				filepath.Join(e.dir, "..", filepath.Base(e.dir), "state."+backend),
			} {
				r := runBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", backend+":"+name)
				assert.Contains(t, r.stderr, "lease held", "--state %s:%s while a run holds %s", backend, name, file)
			}
			tg.open()
			code, stderr := wait()
			require.Equal(t, 0, code, stderr)
			noItemTwice(t, tg.got())
			assert.Equal(t, int32(1), tg.most.Load(), "requests in flight at once")
			checkAtLeastOnceInOrder(t, tg.got(), n, 0)
		})
	}
}

// A lock file emptied under a run (the hot cursor lived in a mapping of
// it: SIGBUS, exit 2, the cursor lost) is written again: the run carries
// on to the end, another run is refused meanwhile, nothing is delivered
// twice. A lock file deleted under a run ends its lease: it stops (exit 1,
// "lease lost") keeping the cursor of what it delivered, another run is
// refused meanwhile, and the next run goes on from there.
func TestLockFileEmptiedOrDeletedUnderARun(t *testing.T) {
	for _, backend := range stateBackends {
		for _, change := range []string{"emptied", "deleted"} {
			t.Run(backend+"/"+change, func(t *testing.T) {
				const n = 30
				e := newEnv(t, n)
				tg := newGatedTarget(t)
				state := e.state(backend)
				wait := startRun(t, e, tg, state)
				locks, _ := filepath.Glob(strings.TrimPrefix(state, backend+":") + ".lock-*")
				require.NotEmpty(t, locks)
				for _, p := range locks {
					if change == "emptied" {
						require.NoError(t, os.Truncate(p, 0))
					} else {
						require.NoError(t, os.Remove(p))
					}
				}
				r := runBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", state)
				assert.Contains(t, r.stderr, "lease held", "a second run while the first one delivers")
				tg.open()
				code, stderr := wait()
				assert.NotContains(t, stderr, "SIGBUS")
				noItemTwice(t, tg.got())
				assert.Equal(t, int32(1), tg.most.Load(), "requests in flight at once")
				if change == "emptied" {
					require.Equal(t, 0, code, stderr)
					checkAtLeastOnceInOrder(t, tg.got(), n, 0)
					return
				}
				require.Equal(t, 1, code, stderr)
				assert.Contains(t, stderr, "lease lost")
				delivered := len(tg.got())
				require.Less(t, delivered, n, "the run stopped early")
				r = runBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", state)
				require.Equal(t, 0, r.code, r.stderr)
				checkAtLeastOnceInOrder(t, tg.got(), n, 1)
			})
		}
	}
}

// A daemon whose lock file is deleted under it loses the lease for that
// cycle (logged "lease lost"), takes it again at the next one (a new lock
// file) and finishes the drain: nothing is lost, the item in flight at most
// is delivered again, and no two deliveries overlap.
func TestDaemonGoesOnAfterItsLockFileIsDeleted(t *testing.T) {
	// Mostly waits on timers: runs beside the other parallel tests.
	t.Parallel()
	const n = 8
	e := newEnv(t, n)
	tg := newGatedTarget(t)
	state := e.state("sqlite")
	d := startDaemonBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", state, "--poll-interval", "5s")
	select {
	case <-tg.second:
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon never reached its second delivery")
	}
	locks, _ := filepath.Glob(strings.TrimPrefix(state, "sqlite:") + ".lock-*")
	require.NotEmpty(t, locks)
	for _, p := range locks {
		require.NoError(t, os.Remove(p))
	}
	tg.open()
	require.Eventually(t, func() bool { return len(uniq(tg.got())) == n }, 30*time.Second, 20*time.Millisecond,
		"the daemon finished the drain: %v\n%s", tg.got(), d.logs.String())
	d.stopGracefully(t)
	assert.Contains(t, d.logs.String(), "lease lost")
	assert.Equal(t, int32(1), tg.most.Load(), "requests in flight at once")
	checkAtLeastOnceInOrder(t, tg.got(), n, 1)
}

func uniq(ids []int64) map[int64]bool {
	m := map[int64]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}
