package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/internal/ilagenttest"
	"github.com/edgepoll/edgepoll/internal/testenv"
)

// stateRig is one store (of one backend) and a fake ilert with n items.
type stateRig struct {
	*env
	state string
	vars  []string
}

func newStateRig(t *testing.T, backend string, n int, ddb *dynalitetest.Server) *stateRig {
	e := newEnv(t, n)
	r := &stateRig{env: e, state: e.state(backend), vars: e.vars()}
	if backend == "dynamodb" {
		table := fmt.Sprintf("edgepoll-state-%d", time.Now().UnixNano())
		ddb.CreateTable(t, table)
		r.state = "dynamodb:" + table
		r.vars = append(r.vars, ddb.Env()...)
	}
	return r
}

func (r *stateRig) run(t *testing.T, args ...string) result {
	t.Helper()
	return runBin(t, r.vars, append(args, "--state", r.state)...)
}

type stateShown struct {
	Connection string  `json:"connection"`
	Cursor     *int64  `json:"cursor"`
	UpdatedAt  *string `json:"updated_at"`
	Lease      struct {
		Held      bool    `json:"held"`
		Holder    *string `json:"holder"`
		ExpiresAt *string `json:"expires_at"`
	} `json:"lease"`
	Refusals int `json:"refusals"`
}

func (r *stateRig) show(t *testing.T) stateShown {
	t.Helper()
	res := r.run(t, "state", "show", "--output", "json")
	require.Equal(t, 0, res.code, res.stderr)
	var s stateShown
	dec := json.NewDecoder(strings.NewReader(res.stdout))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&s), res.stdout)
	return s
}

// firstAfterID is the after-id of the first poll at or after request index i.
func (r *stateRig) firstAfterID(t *testing.T, i int) string {
	t.Helper()
	reqs := r.api.Requests()
	require.Greater(t, len(reqs), i)
	return reqs[i].Query["after-id"]
}

func stateBackendsAll(t *testing.T) ([]string, *dynalitetest.Server) {
	return []string{"sqlite", "json", "dynamodb"}, dynalitetest.Start(t)
}

func TestStateShowSetCursorReset(t *testing.T) {
	backends, ddb := stateBackendsAll(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			r := newStateRig(t, backend, 5, ddb)
			tg := newTarget(t)
			run := []string{"--mode", "http", "--http-url", tg.srv.URL}

			if backend == "dynamodb" {
				s := r.show(t)
				assert.Nil(t, s.Cursor, "new store")
				assert.Nil(t, s.UpdatedAt)
				assert.False(t, s.Lease.Held)
				assert.Nil(t, s.Lease.Holder)
				assert.Zero(t, s.Refusals)
				assert.Len(t, s.Connection, 32)
				text := r.run(t, "state", "show")
				require.Equal(t, 0, text.code, text.stderr)
				assert.Contains(t, text.stdout, "cursor      none")
			} else {
				// A local state file that does not exist is an error
				// naming it, not "no cursor" (cli.md: a typo'd --state).
				text := r.run(t, "state", "show")
				assert.Equal(t, 1, text.code, text.stderr)
				assert.Contains(t, text.stderr, strings.TrimPrefix(r.state, backend+":"))
				_, err := os.Stat(strings.TrimPrefix(r.state, backend+":"))
				assert.ErrorIs(t, err, os.ErrNotExist, "show creates nothing")
			}

			res := r.run(t, run...)
			require.Equal(t, 0, res.code, res.stderr)
			s := r.show(t)
			require.NotNil(t, s.Cursor)
			assert.Equal(t, int64(5), *s.Cursor)
			require.NotNil(t, s.UpdatedAt)
			_, err := time.Parse(time.RFC3339, *s.UpdatedAt)
			assert.NoError(t, err)
			assert.False(t, s.Lease.Held)

			// Rewind: the next run polls with after-id=2 and replays 3..5.
			res = r.run(t, "state", "set-cursor", "2")
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, int64(2), *r.show(t).Cursor)
			n := len(r.api.Requests())
			res = r.run(t, run...)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, "2", r.firstAfterID(t, n))
			assert.Equal(t, []int64{1, 2, 3, 4, 5, 3, 4, 5}, tg.got())

			// Reset: after-id=0, everything again.
			res = r.run(t, "state", "reset")
			require.Equal(t, 0, res.code, res.stderr)
			assert.Nil(t, r.show(t).Cursor)
			n = len(r.api.Requests())
			res = r.run(t, run...)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, "0", r.firstAfterID(t, n))
			assert.Len(t, tg.got(), 13)

			// Skip forward.
			res = r.run(t, "state", "set-cursor", "4")
			require.Equal(t, 0, res.code, res.stderr)
			n = len(r.api.Requests())
			res = r.run(t, run...)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, "4", r.firstAfterID(t, n))
			assert.Equal(t, int64(5), tg.got()[len(tg.got())-1])
			for _, out := range []string{res.stderr, res.stdout} {
				assert.NotContains(t, out, e2eKey)
			}
		})
	}
}

// blockingTarget accepts a connection and holds the first request until
// released, so a run holds its lease for as long as the test needs.
type blockingTarget struct {
	srv     *httptest.Server
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func newBlockingTarget(t *testing.T) *blockingTarget {
	b := &blockingTarget{arrived: make(chan struct{}, 100), release: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.arrived <- struct{}{}
		<-b.release
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() { b.unblock(); b.srv.Close() })
	return b
}

func (b *blockingTarget) unblock() { b.once.Do(func() { close(b.release) }) }

func TestStateCommandsWhileARunHoldsTheLease(t *testing.T) {
	backends, ddb := stateBackendsAll(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			r := newStateRig(t, backend, 3, ddb)
			res := r.run(t, "state", "set-cursor", "1", "--create")
			require.Equal(t, 0, res.code, res.stderr)

			bt := newBlockingTarget(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, edgepollBin(t), "--mode", "http", "--http-url", bt.srv.URL, "--state", r.state)
			cmd.Env = r.vars
			logs := &testenv.SyncBuffer{}
			cmd.Stderr = logs
			require.NoError(t, cmd.Start())
			select {
			case <-bt.arrived:
			case <-ctx.Done():
				t.Fatalf("the run never delivered: %s", logs.String())
			}

			s := r.show(t)
			assert.True(t, s.Lease.Held)
			require.NotNil(t, s.Lease.Holder)
			assert.Contains(t, *s.Lease.Holder, "run-")
			if backend == "dynamodb" {
				require.NotNil(t, s.Lease.ExpiresAt)
			}
			require.NotNil(t, s.Cursor)
			assert.Equal(t, int64(1), *s.Cursor)

			for _, args := range [][]string{{"state", "set-cursor", "0"}, {"state", "reset"}} {
				res := r.run(t, args...)
				assert.Equal(t, 1, res.code, "%q: %s", args, res.stderr)
				assert.Contains(t, res.stderr, *s.Lease.Holder, "names the holder")
				assert.Contains(t, res.stderr, "nothing changed")
			}

			bt.unblock()
			require.NoError(t, cmd.Wait(), logs.String())
			s = r.show(t)
			assert.False(t, s.Lease.Held)
			assert.Equal(t, int64(3), *s.Cursor, "the holder's progress, untouched by the refused commands")
		})
	}
}

// Deleting the state file resets the cursor: no copy of it survives in
// the lock files beside it.
func TestDeletingTheStateFileResets(t *testing.T) {
	for _, backend := range stateBackends {
		t.Run(backend, func(t *testing.T) {
			r := newStateRig(t, backend, 4, nil)
			tg := newTarget(t)
			run := []string{"--mode", "http", "--http-url", tg.srv.URL}
			res := r.run(t, run...)
			require.Equal(t, 0, res.code, res.stderr)
			path := strings.TrimPrefix(r.state, backend+":")
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				_ = os.Remove(p)
			}
			locks, _ := filepath.Glob(path + ".lock-*")
			require.NotEmpty(t, locks, "the lock files stay")
			shown := r.run(t, "state", "show")
			assert.Equal(t, 1, shown.code, "a missing state file is shown as missing, not as no cursor")
			assert.Contains(t, shown.stderr, path)
			n := len(r.api.Requests())
			res = r.run(t, run...)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, "0", r.firstAfterID(t, n))
			assert.Len(t, tg.got(), 8)
		})
	}
}

func TestStateImportIlagent(t *testing.T) {
	backends, ddb := stateBackendsAll(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			r := newStateRig(t, backend, 6, ddb)
			tg := newTarget(t)
			db := filepath.Join(r.dir, "ilagent.db3")
			ilagenttest.Write(t, db, map[string]string{e2eKey: "4", "iec1-other": "99"})

			res := r.run(t, "state", "import-ilagent", filepath.Join(r.dir, "missing.db3"))
			assert.Equal(t, 1, res.code, res.stderr)
			assert.Contains(t, res.stderr, "missing.db3")

			if backend != "dynamodb" {
				// Into a local state file that does not exist: exit 1
				// naming it, nothing created.
				path := strings.TrimPrefix(r.state, backend+":")
				res = r.run(t, "state", "import-ilagent", db)
				assert.Equal(t, 1, res.code, res.stderr)
				assert.Contains(t, res.stderr, path)
				_, err := os.Stat(path)
				require.ErrorIs(t, err, os.ErrNotExist, "nothing created")
				res = r.run(t, "state", "set-cursor", "0", "--create")
				require.Equal(t, 0, res.code, res.stderr)
			}
			res = r.run(t, "state", "import-ilagent", db)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, int64(4), *r.show(t).Cursor)
			res = r.run(t, "--mode", "http", "--http-url", tg.srv.URL)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, []int64{5, 6}, tg.got())

			// Now at 6: importing 4 would move backwards.
			res = r.run(t, "state", "import-ilagent", db)
			assert.Equal(t, 1, res.code, res.stderr)
			assert.Contains(t, res.stderr, "--force")
			assert.Equal(t, int64(6), *r.show(t).Cursor)
			res = r.run(t, "state", "import-ilagent", db, "--force")
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, int64(4), *r.show(t).Cursor)
			assert.NotContains(t, res.stderr, e2eKey)
		})
	}
}

// -f / --file / --ilagent-db: a first run starts from the reference agent's
// cursor; after that edgepoll's own cursor wins.
func TestIlagentDBFlagSeedsTheFirstRun(t *testing.T) {
	for i, flag := range []string{"-f", "--file", "--ilagent-db"} {
		t.Run(flag, func(t *testing.T) {
			r := newStateRig(t, stateBackends[i%len(stateBackends)], 6, nil)
			tg := newTarget(t)
			db := filepath.Join(r.dir, "ilagent.db3")
			ilagenttest.Write(t, db, map[string]string{e2eKey: "3"})
			args := []string{"--edge_mode", "http", "--edge_http_url", tg.srv.URL, flag, db}
			res := r.run(t, args...)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, []int64{4, 5, 6}, tg.got())
			assert.Contains(t, res.stderr, "reference agent")

			ilagenttest.Write(t, db, map[string]string{e2eKey: "1"}) // ilagent's file no longer matters
			r.api.Push(e2eKey, []byte(`{"id":"7","eventType":"alert-created"}`))
			res = r.run(t, args...)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, []int64{4, 5, 6, 7}, tg.got())
			assert.NotContains(t, res.stderr, "reference agent")
		})
	}
	t.Run("nothing to import", func(t *testing.T) {
		r := newStateRig(t, "sqlite", 2, nil)
		tg := newTarget(t)
		res := r.run(t, "--mode", "http", "--http-url", tg.srv.URL, "-f", filepath.Join(r.dir, "none.db3"))
		require.Equal(t, 0, res.code, res.stderr)
		assert.Contains(t, res.stderr, "nothing to import")
		assert.Equal(t, []int64{1, 2}, tg.got())
	})
}

// show reports the refusal streak kept with the cursor; set-cursor starts it
// over.
func TestStateShowRefusals(t *testing.T) {
	backends, ddb := stateBackendsAll(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			r := newStateRig(t, backend, 3, ddb)
			tg := newTarget(t)
			tg.setStatus(func(int64) int { return http.StatusNotFound })
			res := r.run(t, "--mode", "http", "--http-url", tg.srv.URL)
			require.Equal(t, 0, res.code, res.stderr)
			s := r.show(t)
			assert.Equal(t, 3, s.Refusals)
			assert.Equal(t, int64(3), *s.Cursor)
			text := r.run(t, "state", "show")
			assert.Contains(t, text.stdout, "refusals    3")
			res = r.run(t, "state", "set-cursor", "1")
			require.Equal(t, 0, res.code, res.stderr)
			assert.Zero(t, r.show(t).Refusals)
		})
	}
}

// A typo'd --state: the state commands on a local state file that does
// not exist exit 1 naming it and create nothing (set-cursor --create
// creates it); dead-letter list on a dead letter that does not exist is
// exit 1 naming it.
func TestMissingLocalStateIsAnError(t *testing.T) {
	for _, backend := range stateBackends {
		t.Run(backend, func(t *testing.T) {
			r := newStateRig(t, backend, 3, nil)
			path := strings.TrimPrefix(r.state, backend+":")
			db := filepath.Join(r.dir, "ilagent.db3")
			ilagenttest.Write(t, db, map[string]string{e2eKey: "2"})
			for _, args := range [][]string{
				{"state", "show"}, {"state", "show", "--output", "json"}, {"state", "set-cursor", "2"},
				{"state", "reset"}, {"state", "import-ilagent", db}, {"dead-letter", "list"},
			} {
				res := r.run(t, args...)
				assert.Equal(t, 1, res.code, "%q: %s", args, res.stderr)
				assert.Contains(t, res.stderr, path, "%q names the file", args)
				entries, err := os.ReadDir(r.dir)
				require.NoError(t, err)
				assert.Len(t, entries, 1, "%q created nothing: %v", args, entries)
			}
			dl := filepath.Join(r.dir, "typo.jsonl")
			res := r.run(t, "dead-letter", "list", "--dead-letter", "file:"+dl)
			assert.Equal(t, 1, res.code, res.stderr)
			assert.Contains(t, res.stderr, dl)

			res = r.run(t, "state", "set-cursor", "2", "--create")
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, int64(2), *r.show(t).Cursor)
			tg := newTarget(t)
			res = r.run(t, "--mode", "http", "--http-url", tg.srv.URL)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, []int64{3}, tg.got(), "the run started from the cursor set before it")
			res = r.run(t, "dead-letter", "list")
			require.Equal(t, 0, res.code, "the state exists, nothing was skipped: %s", res.stderr)
			assert.Empty(t, strings.TrimSpace(res.stdout))
		})
	}
}
