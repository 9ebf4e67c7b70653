package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

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
