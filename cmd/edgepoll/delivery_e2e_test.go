package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

const e2eKey = "iec1-e2e-Secret-Key-0000"

// target is a real HTTP receiver on loopback recording what it got.
type target struct {
	inflight atomic.Int32
	mu       sync.Mutex
	ids      []int64
	bodies   map[int64]string
	hdrs     map[int64]http.Header
	status   func(id int64) int
	delay    time.Duration
	srv      *httptest.Server
}

func newTarget(t *testing.T) *target { return newTargetWrapped(t, nil) }

// newTargetWrapped is newTarget with wrap around its handler (set before the
// server starts: changing a running server's handler is a data race).
func newTargetWrapped(t *testing.T, wrap func(http.Handler) http.Handler) *target {
	tg := &target{bodies: map[int64]string{}, hdrs: map[int64]http.Header{}}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.inflight.Add(1)
		defer tg.inflight.Add(-1)
		id, _ := strconv.ParseInt(r.Header.Get("X-ilert-Edge-Item-Id"), 10, 64)
		body, _ := io.ReadAll(r.Body)
		tg.mu.Lock()
		delay := tg.delay
		tg.mu.Unlock()
		if delay > 0 {
			time.Sleep(delay)
		}
		st := http.StatusOK
		tg.mu.Lock()
		if tg.status != nil {
			st = tg.status(id)
		}
		if st/100 == 2 {
			tg.ids = append(tg.ids, id)
			tg.bodies[id] = string(body)
			tg.hdrs[id] = r.Header.Clone()
		}
		tg.mu.Unlock()
		w.WriteHeader(st)
	})
	if wrap != nil {
		h = wrap(h)
	}
	tg.srv = httptest.NewServer(h)
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *target) got() []int64 {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]int64(nil), tg.ids...)
}

// checkAtLeastOnceInOrder: every id 1..n arrived, first arrivals in order,
// and at most maxDup redeliveries in total.
func checkAtLeastOnceInOrder(t *testing.T, got []int64, n int, maxDup int) {
	t.Helper()
	seen := map[int64]bool{}
	var firsts []int64
	dups := 0
	for _, id := range got {
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		firsts = append(firsts, id)
	}
	want := make([]int64, n)
	for i := range want {
		want[i] = int64(i + 1)
	}
	require.Equal(t, want, firsts, "every item, first deliveries in order")
	assert.LessOrEqual(t, dups, maxDup, "duplicates bounded")
}

type env struct {
	api   *ilerttest.API
	apiSv *httptest.Server
	dir   string
}

func newEnv(t *testing.T, n int) *env {
	api := ilerttest.New(e2eKey)
	api.Push(e2eKey, ilerttest.AlertEvents(n)...)
	sv := api.Start()
	t.Cleanup(sv.Close)
	return &env{api: api, apiSv: sv, dir: t.TempDir()}
}

func (e *env) vars(extra ...string) []string {
	return baseEnv(append([]string{"ILERT_API_HOST=" + e.apiSv.URL, "ILERT_EDGE_CONNECTOR_KEY=" + e2eKey}, extra...)...)
}

var stateBackends = []string{"sqlite", "json"}

func (e *env) state(backend string) string {
	return backend + ":" + filepath.Join(e.dir, "state."+backend)
}

func TestHTTPDeliveryEndToEnd(t *testing.T) {
	for _, backend := range stateBackends {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, 230)
			tg := newTarget(t)
			args := []string{"--edge_mode", "http", "--edge_http_url", tg.srv.URL + "/hook", "--state", e.state(backend),
				"--edge_http_auth_header", "X-Api-Key"}
			r := runBin(t, e.vars("ILERT_EDGE_HTTP_AUTH_VALUE=tok-Sekr1t"), args...)
			require.Equal(t, 0, r.code, r.stderr)
			checkAtLeastOnceInOrder(t, tg.got(), 230, 0)
			assert.Empty(t, r.stdout, "stdout belongs to the stdout sink")
			h := tg.hdrs[1]
			assert.Equal(t, "application/json", h.Get("Content-Type"))
			assert.Equal(t, "alert-created", h.Get("X-ilert-Event-Type"))
			assert.Equal(t, "100", h.Get("X-ilert-Alert-Id"))
			assert.Equal(t, "1", h.Get("X-ilert-Edge-Item-Id"))
			assert.Equal(t, "tok-Sekr1t", h.Get("X-Api-Key"))
			payloads := ilerttest.AlertEvents(230)
			assert.Equal(t, string(payloads[41]), tg.bodies[42], "payload bytes unchanged")

			// Second run: cursor persisted, nothing redelivered.
			r = runBin(t, e.vars("ILERT_EDGE_HTTP_AUTH_VALUE=tok-Sekr1t"), args...)
			require.Equal(t, 0, r.code, r.stderr)
			assert.Len(t, tg.got(), 230)
			for _, out := range []string{r.stderr, r.stdout} {
				assert.NotContains(t, out, e2eKey)
				assert.NotContains(t, out, "tok-Sekr1t")
			}
		})
	}
}

func TestRetryableTargetFailureExit1ThenResume(t *testing.T) {
	e := newEnv(t, 20)
	tg := newTarget(t)
	down := true
	tg.setStatus(func(id int64) int {
		switch {
		case id == 5:
			return http.StatusBadRequest // permanent: skipped
		case id == 12 && down:
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite")}
	r := runBin(t, e.vars(), args...)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Equal(t, []int64{1, 2, 3, 4, 6, 7, 8, 9, 10, 11}, tg.got())
	assert.Contains(t, r.stderr, "item=5")
	assert.Contains(t, r.stderr, "http_400")
	assert.Contains(t, r.stderr, "http_503")

	tg.mu.Lock()
	down = false
	tg.mu.Unlock()
	r = runBin(t, e.vars(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []int64{1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, tg.got())
}

func TestAPIErrorsExit1CursorUntouched(t *testing.T) {
	e := newEnv(t, 5)
	tg := newTarget(t)
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("json")}
	for _, f := range []ilerttest.Fault{{Status: 401}, {Status: 502}, {Body: []byte(`{"items":[{"id":"1"}]}`)}, {Body: []byte(`[]`)}} {
		e.api.Fail(f)
		r := runBin(t, e.vars(), args...)
		assert.Equal(t, 1, r.code, r.stderr)
		assert.Empty(t, tg.got())
		if f.Status == 401 {
			assert.Contains(t, r.stderr, "authentication failed — check integration key")
		}
	}
	r := runBin(t, e.vars(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	checkAtLeastOnceInOrder(t, tg.got(), 5, 0)
}

func TestStdoutModeOnlyPayloadsOnStdout(t *testing.T) {
	e := newEnv(t, 120)
	e.api.PushItems(e2eKey, ilerttest.Item{ID: 500, Payload: json.RawMessage("{\n  \"id\": \"7\",\n  \"big\": 123456789012345678901234567890\n}")})
	r := runBin(t, e.vars(), "--mode", "stdout", "--state", e.state("sqlite"), "-v", "-v")
	require.Equal(t, 0, r.code, r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, 121)
	payloads := ilerttest.AlertEvents(120)
	for i, l := range lines[:120] {
		assert.Equal(t, string(payloads[i]), l)
	}
	assert.Equal(t, `{"id":"7","big":123456789012345678901234567890}`, lines[120], "one line per item, numbers untouched")
	assert.NotEmpty(t, r.stderr, "logs go to stderr")
}

func TestScriptModeEndToEnd(t *testing.T) {
	e := newEnv(t, 3)
	out := filepath.Join(e.dir, "events.log")
	script := filepath.Join(e.dir, "handle.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s|%s|%s|%s|' \"$ILERT_EDGE_ITEM_ID\" \"$ILERT_EVENT_TYPE\" \"$ILERT_ALERT_ID\" \"$ILERT_TIMESTAMP\" >> "+out+"\ncat >> "+out+"\necho >> "+out+"\n"), 0o755))
	r := runBin(t, e.vars(), "--mode", "script", "--edge_script", script, "--state", e.state("json"))
	require.Equal(t, 0, r.code, r.stderr)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 3)
	p := ilerttest.AlertEvents(3)
	assert.Equal(t, "2|alert-acknowledged|100|2026-05-04T10:00:17.000Z|"+string(p[1]), lines[1])
}

func TestCorruptStateIsAnError(t *testing.T) {
	e := newEnv(t, 3)
	tg := newTarget(t)
	path := filepath.Join(e.dir, "state.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"version":1,"cursors":{`), 0o644))
	r := runBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", "json:"+path)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, path)
	assert.Empty(t, tg.got(), "nothing delivered on a state error")
}

// SIGKILL mid-drain, several times: nothing is lost, each kill redelivers at
// most the item in flight.
func TestSIGKILLMidDrainLosesNothing(t *testing.T) {
	for _, backend := range stateBackends {
		t.Run(backend, func(t *testing.T) {
			const n = 400
			e := newEnv(t, n)
			tg := newTarget(t)
			tg.setDelay(2 * time.Millisecond)
			args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state(backend)}
			kills := killDrain(t, e.vars(), args, func() int { return len(tg.got()) }, []int{37, 150, 151, 290}, nil)
			checkAtLeastOnceInOrder(t, tg.got(), n, kills*boundSequentialLocal)
			checkRestarts(t, redeliveredAtRestarts(tg.got()), kills, boundSequentialLocal)
		})
	}
}

// Concurrent runs on one store: the lease makes them single-flight.
func TestConcurrentRunsNeverDeliverTwice(t *testing.T) {
	for _, backend := range stateBackends {
		t.Run(backend, func(t *testing.T) {
			const n = 300
			e := newEnv(t, n)
			tg := newTarget(t)
			tg.setDelay(time.Millisecond)
			args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state(backend)}
			var wg sync.WaitGroup
			results := make([]result, 4)
			for i := range results {
				wg.Add(1)
				go func() { defer wg.Done(); results[i] = runBin(t, e.vars(), args...) }()
			}
			wg.Wait()
			held := 0
			for _, r := range results {
				assert.Equal(t, 0, r.code, r.stderr)
				if strings.Contains(r.stderr, "lease held") {
					held++
				}
			}
			got := tg.got()
			seen := map[int64]bool{}
			for _, id := range got {
				require.False(t, seen[id], "item %d delivered twice", id)
				seen[id] = true
			}
			// Runs that found the lease held did not poll; finish the drain.
			r := runBin(t, e.vars(), args...)
			require.Equal(t, 0, r.code, r.stderr)
			checkAtLeastOnceInOrder(t, tg.got(), n, 0)
			t.Logf("%d of %d concurrent runs found the lease held", held, len(results))
		})
	}
}

// itemIDs reads the X-ilert-Edge-Item-Id user property of MQTT messages.
func itemIDs(t *testing.T, msgs []*paho.Publish) []int64 {
	var ids []int64
	for _, m := range msgs {
		for _, u := range m.Properties.User {
			if u.Key == "X-ilert-Edge-Item-Id" {
				id, err := strconv.ParseInt(u.Value, 10, 64)
				require.NoError(t, err)
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// One-shot runs can leave their metrics for the node exporter's textfile
// collector.
func TestMetricsFileOfOneShotRun(t *testing.T) {
	e := newEnv(t, 7)
	tg := newTarget(t)
	tg.setStatus(answer(http.StatusBadRequest, 3))
	prom := filepath.Join(e.dir, "edgepoll.prom")
	r := runBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), "--metrics-file", prom)
	require.Equal(t, 0, r.code, r.stderr)
	b, err := os.ReadFile(prom)
	require.NoError(t, err)
	for _, want := range []string{
		`edgepoll_items_total{outcome="delivered",reason="",sink="http"} 6`,
		`edgepoll_items_total{outcome="skipped",reason="http_400",sink="http"} 1`,
		`edgepoll_cursor 7`,
		`edgepoll_cycles_total{result="ok"} 1`,
	} {
		assert.Contains(t, string(b), want)
	}
	assert.NotContains(t, string(b), e2eKey)
}

// setDelay and setStatus change the target's behaviour while requests may
// be in flight.
func (tg *target) setDelay(d time.Duration) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.delay = d
}

func (tg *target) setStatus(f func(id int64) int) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.status = f
}

// answer is a setStatus that answers code to the items ids, 200 to the
// others.
func answer(code int, ids ...int64) func(id int64) int {
	return func(id int64) int {
		for _, i := range ids {
			if id == i {
				return code
			}
		}
		return http.StatusOK
	}
}

// edgepoll_cursor is the stored cursor from the first cycle on, also of a
// run that delivered nothing (issue 16.7).
func TestCursorMetricWithoutDelivery(t *testing.T) {
	e := newEnv(t, 5)
	tg := newTarget(t)
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite")}
	r := runBin(t, e.vars(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	prom := filepath.Join(e.dir, "edgepoll.prom")
	r = runBin(t, e.vars(), append(args, "--metrics-file", prom)...)
	require.Equal(t, 0, r.code, r.stderr)
	b, err := os.ReadFile(prom)
	require.NoError(t, err)
	assert.Contains(t, string(b), "\nedgepoll_cursor 5\n", "the stored cursor, though this run delivered nothing")
}

// Items at or below the cursor in a poll answer are not delivered, and
// never silently: logged at WARN with their ids, counted as stale (16.7).
func TestStaleItemsWarnedAndCounted(t *testing.T) {
	e := newEnv(t, 5)
	tg := newTarget(t)
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite")}
	r := runBin(t, e.vars(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	// ilert's ids restarted: the answer after after-id=5 holds 4 and 5.
	e.api.Fail(ilerttest.Fault{Body: []byte(`{"items":[{"id":4,"payload":{}},{"id":5,"payload":{}}]}`)})
	prom := filepath.Join(e.dir, "edgepoll.prom")
	r = runBin(t, e.vars(), append(args, "--metrics-file", prom)...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Regexp(t, `level=WARN msg="the poll answered items at or below the cursor[^"]*" items="?\[4 5\]"? cursor=5`, r.stderr)
	b, err := os.ReadFile(prom)
	require.NoError(t, err)
	assert.Contains(t, string(b), `edgepoll_items_total{outcome="stale",reason="",sink="http"} 2`)
	assert.Len(t, tg.got(), 5, "not delivered again")
}
