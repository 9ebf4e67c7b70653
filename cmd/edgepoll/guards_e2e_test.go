package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// runCursor runs the binary and returns the after-id of its first poll:
// the cursor the previous runs left.
func (e *env) runCursor(t *testing.T, vars []string, args ...string) (result, int64) {
	t.Helper()
	before := len(e.api.Requests())
	r := runBin(t, vars, args...)
	reqs := e.api.Requests()
	require.Greater(t, len(reqs), before, "the run polled: %s", r.stderr)
	n, err := strconv.ParseInt(reqs[before].Query["after-id"], 10, 64)
	require.NoError(t, err)
	return r, n
}

func refuseAll(status int) func(int64) int { return func(int64) int { return status } }

// deadLetters reads a dead-letter file's JSON lines.
func deadLetters(t *testing.T, path string) []map[string]json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		out = append(out, m)
	}
	return out
}

// A typo in the target path (404 for everything): the reference rules skip
// a week of alerts with exit 0; the skip limit stops after 10 and says why,
// run after run, and the dead letter keeps what was skipped.
func TestTypoTargetStopsAtSkipLimit(t *testing.T) {
	const msg = "10 consecutive items refused by the target (last: HTTP 404): target misconfigured? (--skip-limit)"
	t.Run("without dead letter", func(t *testing.T) {
		e := newEnv(t, 175)
		tg := newTarget(t)
		tg.setStatus(refuseAll(http.StatusNotFound))
		args := []string{"--mode", "http", "--http-url", tg.srv.URL + "/evnets", "--state", e.state("sqlite")}
		r := runBin(t, e.vars(), args...)
		assert.Equal(t, 1, r.code, r.stderr)
		assert.Contains(t, r.stderr, msg)

		r, cursor := e.runCursor(t, e.vars(), args...)
		assert.Equal(t, int64(10), cursor, "ten skipped, the cursor stays before the 11th")
		assert.Equal(t, 1, r.code, r.stderr)
		assert.Contains(t, r.stderr, msg, "the streak is kept across runs")

		// Target fixed: everything from the 11th on arrives, the streak resets.
		tg.setStatus(nil)
		r = runBin(t, e.vars(), args...)
		require.Equal(t, 0, r.code, r.stderr)
		got := tg.got()
		require.Len(t, got, 165)
		assert.Equal(t, int64(11), got[0])
	})
	t.Run("with dead letter", func(t *testing.T) {
		e := newEnv(t, 175)
		tg := newTarget(t)
		tg.setStatus(refuseAll(http.StatusNotFound))
		dl := filepath.Join(e.dir, "dead.jsonl")
		r := runBin(t, e.vars("EDGEPOLL_DEAD_LETTER=file:"+dl), "--mode", "http", "--http-url", tg.srv.URL+"/evnets", "--state", e.state("json"))
		assert.Equal(t, 1, r.code, r.stderr)
		assert.Contains(t, r.stderr, msg)
		lines := deadLetters(t, dl)
		require.Len(t, lines, 10, "exactly the skipped items")
		for i, l := range lines {
			assert.Equal(t, strconv.Itoa(i+1), string(l["id"]))
			assert.Equal(t, `"http_404"`, string(l["reason"]))
			assert.Equal(t, "404", string(l["status"]))
			assert.Contains(t, string(l["error"]), "404")
			assert.Contains(t, l, "skipped_at")
		}
		assert.JSONEq(t, string(ilerttest.AlertEvents(1)[0]), string(lines[0]["payload"]), "the payload, verbatim")
		b, _ := os.ReadFile(dl)
		assert.NotContains(t, string(b), e2eKey)
	})
	t.Run("skip-limit 0 is the reference behaviour", func(t *testing.T) {
		e := newEnv(t, 30)
		tg := newTarget(t)
		tg.setStatus(refuseAll(http.StatusNotFound))
		args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite")}
		r := runBin(t, e.vars("EDGEPOLL_SKIP_LIMIT=0"), args...)
		assert.Equal(t, 0, r.code, r.stderr)
		_, cursor := e.runCursor(t, e.vars("EDGEPOLL_SKIP_LIMIT=0"), args...)
		assert.Equal(t, int64(30), cursor, "every refused item skipped")
	})
}

// The refusal streak is counted across runs, in every state backend: 3
// refusals in one run and 2 in the next reach --skip-limit 5.
func TestSkipStreakAcrossRuns(t *testing.T) {
	backends := map[string]func(t *testing.T, e *env) (string, []string){
		"sqlite": func(t *testing.T, e *env) (string, []string) { return e.state("sqlite"), nil },
		"json":   func(t *testing.T, e *env) (string, []string) { return e.state("json"), nil },
		"dynamodb": func(t *testing.T, e *env) (string, []string) {
			ddb := dynalitetest.Start(t)
			ddb.CreateTable(t, "edgepoll-state")
			return "dynamodb:edgepoll-state", ddb.Env()
		},
	}
	for name, backend := range backends {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 3)
			state, extra := backend(t, e)
			tg := newTarget(t)
			tg.setStatus(refuseAll(http.StatusUnauthorized))
			args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", state, "--skip-limit", "5"}
			r := runBin(t, e.vars(extra...), args...)
			require.Equal(t, 0, r.code, "3 refusals are under the limit: %s", r.stderr)
			e.api.Push(e2eKey, ilerttest.AlertEvents(4)...)
			r = runBin(t, e.vars(extra...), args...)
			assert.Equal(t, 1, r.code, r.stderr)
			assert.Contains(t, r.stderr, "5 consecutive items refused by the target (last: HTTP 401): target misconfigured? (--skip-limit)")

			// One delivery resets the streak: 5 more refusals are skipped.
			tg.setStatus(func(id int64) int {
				if id == 6 {
					return http.StatusOK
				}
				return http.StatusUnauthorized
			})
			e.api.Push(e2eKey, ilerttest.AlertEvents(3)...)
			r, cursor := e.runCursor(t, e.vars(extra...), args...)
			assert.Equal(t, int64(5), cursor, "items 4 and 5 were skipped, 6 kept")
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, []int64{6}, tg.got())
		})
	}
}

// A dead letter that cannot be written: the item is not skipped, the cycle
// fails and the cursor stays before it; once writable, nothing was lost.
func TestUnwritableDeadLetterKeepsTheItem(t *testing.T) {
	e := newEnv(t, 8)
	tg := newTarget(t)
	tg.setStatus(answer(http.StatusBadRequest, 3))
	dl := filepath.Join(e.dir, "dead.jsonl")
	require.NoError(t, os.Mkdir(dl+".lock", 0o700)) // every write fails, even as root
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), "--dead-letter", "file:" + dl}
	r := runBin(t, e.vars(), args...)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "item 3 not skipped")
	assert.Equal(t, []int64{1, 2}, tg.got(), "nothing past the item")

	require.NoError(t, os.Remove(dl+".lock"))
	r, cursor := e.runCursor(t, e.vars(), args...)
	assert.Equal(t, int64(2), cursor, "the cursor stayed before the item")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []int64{1, 2, 4, 5, 6, 7, 8}, tg.got())
	lines := deadLetters(t, dl)
	require.Len(t, lines, 1)
	assert.Equal(t, "3", string(lines[0]["id"]))
}

// --http-retry-status: a 404 is retried, never skipped.
func TestHTTPRetryStatus(t *testing.T) {
	e := newEnv(t, 5)
	tg := newTarget(t)
	tg.setStatus(refuseAll(http.StatusNotFound))
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), "--http-retry-status", "401, 404"}
	r := runBin(t, e.vars(), args...)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "http_404")
	tg.setStatus(nil)
	r, cursor := e.runCursor(t, e.vars(), args...)
	assert.Equal(t, int64(0), cursor, "nothing skipped")
	require.Equal(t, 0, r.code, r.stderr)
	checkAtLeastOnceInOrder(t, tg.got(), 5, 0)

	for _, bad := range []string{"404,500", "abc", "200"} {
		r := runBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--http-retry-status", bad)
		assert.Equal(t, 2, r.code, bad)
		assert.Contains(t, r.stderr, "--http-retry-status")
	}
	r = runBin(t, e.vars("EDGEPOLL_SKIP_LIMIT=-1"), "--mode", "stdout")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "EDGEPOLL_SKIP_LIMIT")
	r = runBin(t, e.vars(), "--mode", "stdout", "--dead-letter", "s3:x")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "--dead-letter")
}

// Credentials in the target URL are HTTP Basic authentication, and the
// password appears in no output, even at the most verbose level.
func TestURLCredentialsEndToEnd(t *testing.T) {
	e := newEnv(t, 4)
	var unauthorized atomic.Int32
	const user, pass = "edge", "Pw-S3cr3t!"
	tg := newTargetWrapped(t, func(h http.Handler) http.Handler { return basicAuth(user, pass, h, &unauthorized) })
	u := strings.Replace(tg.srv.URL, "http://", "http://"+user+":"+pass+"@", 1) + "/hook"
	r := runBin(t, e.vars("EDGEPOLL_HTTP_URL="+u), "--mode", "http", "--state", e.state("sqlite"), "-v", "-v")
	require.Equal(t, 0, r.code, r.stderr)
	checkAtLeastOnceInOrder(t, tg.got(), 4, 0)
	assert.Zero(t, unauthorized.Load())
	assert.NotContains(t, r.stderr, pass)

	// A wrong password: refused (401), and still never printed.
	e.api.Push(e2eKey, ilerttest.AlertEvents(1)...)
	bad := strings.Replace(u, pass, "Wr0ng-Pw", 1)
	r = runBin(t, e.vars("EDGEPOLL_HTTP_URL="+bad, "EDGEPOLL_SKIP_LIMIT=0"), "--mode", "http", "--state", e.state("sqlite"), "-v", "-v")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, int32(1), unauthorized.Load())
	assert.Contains(t, r.stderr, "http_401")
	assert.NotContains(t, r.stderr, "Wr0ng-Pw")
}

func basicAuth(user, pass string, next http.Handler, unauthorized *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			unauthorized.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// --metrics-file of one-shot runs tells the truth across runs: the failure
// streak and the last success come from the state store.
func TestMetricsFileAcrossRuns(t *testing.T) {
	e := newEnv(t, 3)
	tg := newTarget(t)
	tg.setStatus(refuseAll(http.StatusServiceUnavailable))
	prom := filepath.Join(e.dir, "edgepoll.prom")
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("json"), "--metrics-file", prom}
	metric := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(prom)
		require.NoError(t, err)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				return v
			}
		}
		t.Fatalf("%s not in %s", name, b)
		return ""
	}
	for i := 1; i <= 2; i++ {
		r := runBin(t, e.vars(), args...)
		require.Equal(t, 1, r.code, r.stderr)
		assert.Equal(t, strconv.Itoa(i), metric("edgepoll_consecutive_failures"), "run %d", i)
		assert.Equal(t, "0", metric("edgepoll_last_success_timestamp_seconds"), "never succeeded")
	}
	tg.setStatus(nil)
	r := runBin(t, e.vars(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "0", metric("edgepoll_consecutive_failures"))
	success, err := strconv.ParseFloat(metric("edgepoll_last_success_timestamp_seconds"), 64)
	require.NoError(t, err)
	assert.Greater(t, success, 1e9)

	// A run with nothing to do keeps the stored last delivery.
	r = runBin(t, e.vars(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	delivery, err := strconv.ParseFloat(metric("edgepoll_last_delivery_timestamp_seconds"), 64)
	require.NoError(t, err)
	assert.Greater(t, delivery, 1e9)
}
