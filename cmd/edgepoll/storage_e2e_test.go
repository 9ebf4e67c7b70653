package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/fstest"
)

// Damaged state is never "no cursor": a SQLite file cut to 0 bytes and a
// JSON file with a negative cursor fail the run and the state commands
// (exit 1 naming the file), nothing is polled or delivered, and the file is
// left as it was.
func TestDamagedStateIsNeverNoCursor(t *testing.T) {
	for backend, body := range map[string]string{
		"sqlite": "",
		"json":   `{"version":1,"cursors":{"x":{"cursor":-3,"updated_at":""}}}`,
	} {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, 5)
			tg := newTarget(t)
			path := filepath.Join(e.dir, "state."+backend)
			require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
			for _, args := range [][]string{
				{"--mode", "http", "--http-url", tg.srv.URL, "--state", backend + ":" + path},
				{"state", "show", "--state", backend + ":" + path},
			} {
				r := runBin(t, e.vars(), args...)
				assert.Equal(t, 1, r.code, "%q: %s", args, r.stderr)
				assert.Contains(t, r.stderr, path, "%q names the file", args)
				assert.NotContains(t, r.stderr, "oldest queued event", "%q", args)
			}
			assert.Empty(t, tg.got(), "nothing delivered")
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, body, string(got), "the damaged file is left as it was")
		})
	}
}

// A full disk is named as such by the run (exit 1), never as a damaged
// store; once there is space again the next run goes on from the cursor.
func TestFullDiskIsNamed(t *testing.T) {
	for _, backend := range stateBackends {
		t.Run(backend, func(t *testing.T) {
			dir := fstest.Tmpfs(t, "256k")
			e := newEnv(t, 4)
			tg := newTarget(t)
			state := backend + ":" + filepath.Join(dir, "state."+backend)
			args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", state}
			fill := filepath.Join(dir, "filler")
			fstest.Fill(t, dir)
			r := runBin(t, e.vars(), args...)
			assert.Equal(t, 1, r.code, r.stderr)
			assert.Contains(t, r.stderr, "disk full")
			assert.NotContains(t, r.stderr, "not a usable")
			require.NoError(t, os.Remove(fill))
			r = runBin(t, e.vars(), args...)
			require.Equal(t, 0, r.code, r.stderr)
			checkAtLeastOnceInOrder(t, tg.got(), 4, 0)
		})
	}
}
