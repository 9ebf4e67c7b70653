package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The runner in this process (run with -race): a one-shot run of a file
// sets every connection up in its worker, --max-parallel at a time, and
// lets it go after its cycle; every item is delivered once and the run
// ends 0. A second run finds every cursor and delivers nothing again.
func TestRunnerSetsConnectionsUpInTheirWorkers(t *testing.T) {
	r := newFleetRig(t, 9, 5)
	cfg := r.config(t, "mode: http\nstate: sqlite:"+filepath.Join(r.dir, "state.db")+"\nmax-parallel: 3\n")
	for _, kv := range r.vars() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	var stderr strings.Builder
	require.Equal(t, exitOK, run([]string{"--config", cfg}, io.Discard, &stderr), stderr.String())
	r.checkEachOnce(t)
	assert.Contains(t, stderr.String(), `msg="run done" connections=9 failed=0`)
	stderr.Reset()
	require.Equal(t, exitOK, run([]string{"--config", cfg}, io.Discard, &stderr), stderr.String())
	r.checkEachOnce(t)
}

// An idle --loop --config daemon holds no file descriptor per connection
// (issue 19.2): one pool of connections to the ilert API, each
// connection's target connection closed after its cycle, one store and
// dead-letter handle for all. Sixty connections deliver one item each and
// poll again; the process then has far fewer descriptors than connections
// (before: one API connection, one target connection and one dead-letter
// database each, some 180).
func TestLoopIdleConnectionsHoldNoDescriptors(t *testing.T) {
	// Mostly waits on timers: runs beside the other parallel tests.
	t.Parallel()
	const conns = 60
	r := newFleetRig(t, conns, 1)
	cfg := r.config(t, "mode: http\nstate: sqlite:"+filepath.Join(r.dir, "state.db")+"\npoll-interval: 5s\n")
	d := startDaemonBin(t, r.vars(), "--config", cfg)
	polls := func() int {
		n := 0
		for _, req := range r.api.Requests() {
			if req.Path == "/api/edge-connections/events" {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return polls() >= 2*conns+conns }, 90*time.Second, 50*time.Millisecond, d.logs.String())
	r.checkEachOnce(t)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.cmd.Process.Pid))
	require.NoError(t, err)
	assert.Less(t, len(fds), conns*2/3, "descriptors of an idle daemon of %d connections", conns)
	d.stopGracefully(t)
}
