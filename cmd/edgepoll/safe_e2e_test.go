package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/ilagenttest"
)

// runBinIn runs the binary with dir as its working directory.
func runBinIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, edgepollBin(t), args...)
	cmd.Dir, cmd.Env = dir, env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	require.NotContains(t, r.stderr, "goroutine ", "no panic")
	return r
}

// freshWarning is the WARN of a cycle that finds no cursor (16.4).
const freshWarning = `level=WARN msg="no cursor for this connection in the state store: starting from the oldest queued event`

// A cycle that finds no cursor says so once, at WARN, naming the state as
// given; once a cursor is stored it says nothing (16.4, cli.md "Safe by
// default"): one-shot, --loop and --config.
func TestFirstRunWarnsNoCursor(t *testing.T) {
	t.Run("one-shot", func(t *testing.T) {
		e := newEnv(t, 3)
		tg := newTarget(t)
		state := e.state("sqlite")
		args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", state}
		r := runBin(t, e.vars(), args...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, 1, strings.Count(r.stderr, freshWarning), r.stderr)
		assert.Contains(t, r.stderr, "state="+state)
		r = runBin(t, e.vars(), args...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.NotContains(t, r.stderr, freshWarning, "a stored cursor: no warning")
	})
	t.Run("loop", func(t *testing.T) {
		e := newEnv(t, 0) // nothing queued: no cursor is ever stored
		tg := newTarget(t)
		state := e.state("json")
		d := startDaemonBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", state, "--poll-interval", "5s")
		require.Eventually(t, func() bool { return len(e.api.Requests()) >= 2 }, 20*time.Second, 50*time.Millisecond)
		d.stopGracefully(t)
		logs := d.logs.String()
		assert.Equal(t, 1, strings.Count(logs, freshWarning), "once, not every cycle:\n%s", logs)
		assert.Contains(t, logs, "state="+state)
	})
	t.Run("config", func(t *testing.T) {
		rig := newFleetRig(t, 2, 2)
		cfg := rig.config(t, "mode: http\nstate: sqlite:"+rig.dir+"/fleet.db\n")
		r := runBin(t, rig.vars(), "--config", cfg)
		require.Equal(t, 0, r.code, r.stderr)
		for _, n := range rig.names {
			assert.Regexp(t, `level=WARN msg="no cursor for this connection[^"]*" connection=`+n+` state=sqlite:`, r.stderr)
		}
		r = runBin(t, rig.vars(), "--config", cfg)
		require.Equal(t, 0, r.code, r.stderr)
		assert.NotContains(t, r.stderr, freshWarning)
	})
}

// Switching from ilagent without -f (16.2): ilagent's own default file,
// ./ilagent.db3 in the working directory, is read while edgepoll has no
// cursor (WARN naming it); a damaged one fails the run before any poll
// (exit 1 naming it); --ilagent-db none turns the look-up off.
func TestIlagentDefaultFileWithoutF(t *testing.T) {
	args := func(e *env, tg *target) []string {
		return []string{"--edge_mode", "http", "--edge_http_url", tg.srv.URL, "--state", e.state("sqlite")}
	}
	t.Run("read", func(t *testing.T) {
		e, tg := newEnv(t, 6), newTarget(t)
		ilagenttest.Write(t, filepath.Join(e.dir, "ilagent.db3"), map[string]string{e2eKey: "3"})
		r := runBinIn(t, e.dir, e.vars(), args(e, tg)...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, []int64{4, 5, 6}, tg.got(), "from ilagent's cursor, not the whole queue")
		assert.Regexp(t, `level=WARN msg="[^"]*reference agent's cursor[^"]*" file=./ilagent.db3 cursor=3`, r.stderr)
		assert.NotContains(t, r.stderr, freshWarning, "the cursor came from ilagent's file")
		e.api.Push(e2eKey, []byte(`{"id":"7","eventType":"alert-created"}`))
		r = runBinIn(t, e.dir, e.vars(), args(e, tg)...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, []int64{4, 5, 6, 7}, tg.got())
		assert.NotContains(t, r.stderr, "ilagent.db3", "edgepoll's own cursor wins from then on")
	})
	t.Run("none", func(t *testing.T) {
		e, tg := newEnv(t, 2), newTarget(t)
		ilagenttest.Write(t, filepath.Join(e.dir, "ilagent.db3"), map[string]string{e2eKey: "1"})
		r := runBinIn(t, e.dir, e.vars(), append(args(e, tg), "--ilagent-db", "none")...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, []int64{1, 2}, tg.got())
		assert.NotContains(t, r.stderr, "ilagent.db3")
	})
	for name, content := range map[string][]byte{"damaged": []byte("not a database, not at all, no"), "empty": {}} {
		t.Run(name, func(t *testing.T) {
			e, tg := newEnv(t, 2), newTarget(t)
			require.NoError(t, os.WriteFile(filepath.Join(e.dir, "ilagent.db3"), content, 0o600))
			r := runBinIn(t, e.dir, e.vars(), args(e, tg)...)
			assert.Equal(t, 1, r.code, r.stderr)
			assert.Contains(t, r.stderr, "ilagent file ./ilagent.db3")
			assert.Contains(t, r.stderr, "--ilagent-db none")
			assert.Empty(t, e.api.Requests(), "nothing is polled")
			assert.Empty(t, tg.got())
		})
	}
}
