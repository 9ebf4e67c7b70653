package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// Items refused by the target land in the dead letter; once the target is
// fixed, `dead-letter replay` delivers them in order with their original
// payload and metadata and removes them; a failure stops it (exit 1) and
// leaves the rest.
func TestDeadLetterListAndReplay(t *testing.T) {
	ddb := dynalitetest.Start(t)
	for _, backend := range []string{"file", "dynamodb"} {
		t.Run(backend, func(t *testing.T) {
			r := newStateRig(t, "json", 6, nil)
			dl := "file:" + filepath.Join(r.dir, "dead.jsonl")
			if backend == "dynamodb" {
				table := fmt.Sprintf("edgepoll-dl-%d", time.Now().UnixNano())
				ddb.CreateTable(t, table)
				dl = "dynamodb:" + table
				r.vars = append(r.vars, ddb.Env()...)
			}
			tg := newTarget(t)
			refused := map[int64]bool{2: true, 4: true, 5: true}
			tg.setStatus(func(id int64) int {
				if refused[id] {
					return http.StatusNotFound
				}
				return http.StatusOK
			})
			run := []string{"--mode", "http", "--http-url", tg.srv.URL, "--dead-letter", dl}
			res := r.run(t, run...)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, []int64{1, 3, 6}, tg.got())

			res = r.run(t, "dead-letter", "list", "--dead-letter", dl)
			require.Equal(t, 0, res.code, res.stderr)
			lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
			require.Len(t, lines, 3, res.stdout)
			for i, id := range []string{"2", "4", "5"} {
				f := strings.Split(lines[i], "\t")
				require.Len(t, f, 3, lines[i])
				assert.Equal(t, id, f[0])
				assert.Equal(t, "http_404", f[1])
				_, err := time.Parse(time.RFC3339, f[2])
				assert.NoError(t, err)
			}

			// The target is fixed, but item 5 still fails (503): replay
			// delivers 2 and 4, stops at 5 with exit 1, 5 stays.
			tg.setStatus(answer(http.StatusServiceUnavailable, 5))
			res = r.run(t, append([]string{"dead-letter", "replay"}, run...)...)
			assert.Equal(t, 1, res.code, res.stderr)
			assert.Equal(t, []int64{1, 3, 6, 2, 4}, tg.got())
			payloads := ilerttest.AlertEvents(6)
			assert.Equal(t, string(payloads[1]), tg.bodies[2], "the original payload")
			assert.Equal(t, "2", tg.hdrs[2].Get("X-ilert-Edge-Item-Id"))
			orig := poll.NewEvent(2, payloads[1])
			require.NotEmpty(t, orig.EventType)
			assert.Equal(t, orig.EventType, tg.hdrs[2].Get("X-ilert-Event-Type"))
			assert.Equal(t, orig.AlertID, tg.hdrs[2].Get("X-ilert-Alert-Id"))
			res = r.run(t, "dead-letter", "list", "--dead-letter", dl)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, "5", strings.Split(strings.TrimSpace(res.stdout), "\t")[0])

			tg.setStatus(nil)
			res = r.run(t, append([]string{"dead-letter", "replay"}, run...)...)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, []int64{1, 3, 6, 2, 4, 5}, tg.got())
			res = r.run(t, "dead-letter", "list", "--dead-letter", dl)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Empty(t, strings.TrimSpace(res.stdout))
			assert.Equal(t, int64(6), *r.show(t).Cursor, "replay does not move the cursor")

			// none keeps nothing to replay (before, no --dead-letter was
			// this error; now the default is state: cli.md).
			res = r.run(t, "dead-letter", "replay", "--mode", "http", "--http-url", tg.srv.URL, "--dead-letter", "none")
			assert.Equal(t, 2, res.code)
			assert.Contains(t, res.stderr, "--dead-letter")
		})
	}
}

// The dead letter is on by default (--dead-letter state): what a refusing
// target skipped is kept in the state store itself, per connection, and
// `dead-letter list|replay` find it with --state alone. --dead-letter none
// keeps nothing.
func TestDeadLetterOnByDefault(t *testing.T) {
	backends, ddb := stateBackendsAll(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			r := newStateRig(t, backend, 6, ddb)
			tg := newTarget(t)
			tg.setStatus(answer(http.StatusNotFound, 2, 4))
			run := []string{"--mode", "http", "--http-url", tg.srv.URL}
			res := r.run(t, run...)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, []int64{1, 3, 5, 6}, tg.got())

			res = r.run(t, "dead-letter", "list")
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, []string{"2", "4"}, firstColumn(res.stdout))

			tg.setStatus(nil)
			res = r.run(t, append([]string{"dead-letter", "replay"}, run...)...)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, []int64{1, 3, 5, 6, 2, 4}, tg.got())
			res = r.run(t, "dead-letter", "list")
			require.Equal(t, 0, res.code, res.stderr)
			assert.Empty(t, firstColumn(res.stdout))

			// --dead-letter none: the reference behaviour, nothing kept.
			tg.setStatus(refuseAll(http.StatusNotFound))
			r.api.Push(e2eKey, []byte(`{"id":"7","eventType":"alert-created"}`))
			res = r.run(t, append(run, "--dead-letter", "none")...)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, int64(7), *r.show(t).Cursor, "skipped")
			res = r.run(t, "dead-letter", "list")
			require.Equal(t, 0, res.code, res.stderr)
			assert.Empty(t, firstColumn(res.stdout), "none kept nothing")
		})
	}
}

// firstColumn is the first tab-separated field of every line of out.
func firstColumn(out string) []string {
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			ids = append(ids, strings.Split(l, "\t")[0])
		}
	}
	return ids
}

// --config: every connection keeps its own dead letter by default, in the
// state store they share.
func TestFleetDeadLetterPerConnection(t *testing.T) {
	for _, backend := range stateBackends {
		t.Run(backend, func(t *testing.T) {
			r := newFleetRig(t, 2, 3)
			r.tg.status = func(path string) int {
				if path == "conn-00" {
					return http.StatusNotFound
				}
				return http.StatusOK
			}
			cfg := r.config(t, "mode: http\nstate: "+backend+":"+filepath.Join(r.dir, "state")+"\n")
			res := runBin(t, r.vars(), "--config", cfg)
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, []int64{1, 2, 3}, r.tg.ids("conn-01"))

			res = runBin(t, r.vars(), "dead-letter", "list", "--config", cfg, "--connection", "conn-00")
			require.Equal(t, 0, res.code, res.stderr)
			assert.Equal(t, []string{"1", "2", "3"}, firstColumn(res.stdout))
			res = runBin(t, r.vars(), "dead-letter", "list", "--config", cfg, "--connection", "conn-01")
			require.Equal(t, 0, res.code, res.stderr)
			assert.Empty(t, firstColumn(res.stdout), "conn-01 skipped nothing")
		})
	}
}
