package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
