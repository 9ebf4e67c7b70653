package main

import (
	"database/sql"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/state"
)

// With --state sqlite:PATH the default dead letter is a table of PATH
// (nothing is written beside it); records an earlier version kept in
// PATH.deadletter.jsonl are still listed and replayed with --state alone,
// and removed from that file once delivered.
func TestSQLiteDeadLetterInTheStateFile(t *testing.T) {
	r := newStateRig(t, "sqlite", 4, nil)
	path := strings.TrimPrefix(r.state, "sqlite:")
	legacy := path + ".deadletter.jsonl"
	conn := poll.ConnectionID(e2eKey)
	line, err := state.EncodeDeadLetter(poll.NewDeadLetterRecord(conn, poll.Event{ID: 1, Payload: ilerttest.AlertEvents(1)[0]},
		poll.Permanent("http_404", errors.New("target answered 404")), time.Now()))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(legacy, line, 0o600))
	require.Equal(t, 0, r.run(t, "state", "set-cursor", "1", "--create").code)

	tg := newTarget(t)
	tg.setStatus(answer(http.StatusNotFound, 3))
	run := []string{"--mode", "http", "--http-url", tg.srv.URL}
	res := r.run(t, run...)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Equal(t, []int64{2, 4}, tg.got())
	after, err := os.ReadFile(legacy)
	require.NoError(t, err)
	assert.Equal(t, string(line), string(after), "nothing new beside the state file")
	db, err := sql.Open("sqlite", "file:"+filepath.Clean(path)+"?mode=ro")
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM deadletter WHERE id = 3").Scan(&n))
	db.Close()
	assert.Equal(t, 1, n, "item 3 is in the state file's table")

	res = r.run(t, "dead-letter", "list")
	require.Equal(t, 0, res.code, res.stderr)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	require.Len(t, lines, 2, res.stdout)
	assert.True(t, strings.HasPrefix(lines[0], "1\t") && strings.HasPrefix(lines[1], "3\t"), res.stdout)

	tg.setStatus(nil)
	res = r.run(t, append([]string{"dead-letter", "replay"}, run...)...)
	require.Equal(t, 0, res.code, res.stderr)
	assert.Equal(t, []int64{2, 4, 1, 3}, tg.got())
	res = r.run(t, "dead-letter", "list")
	require.Equal(t, 0, res.code, res.stderr)
	assert.Empty(t, strings.TrimSpace(res.stdout))
	after, err = os.ReadFile(legacy)
	require.NoError(t, err)
	assert.Empty(t, strings.TrimSpace(string(after)), "the replayed record left the old file")
}
