package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// lifecycleFilter lets created and resolved events through.
const lifecycleFilter = `.eventType == "alert-created" or .eventType == "alert-resolved"`

// wantIDs are the ids (1-based) of payloads whose eventType is one of kinds.
func wantIDs(t *testing.T, payloads []json.RawMessage, from int64, kinds ...string) []int64 {
	t.Helper()
	var out []int64
	for i, p := range payloads {
		ev := poll.NewEvent(from+int64(i), p)
		for _, k := range kinds {
			if ev.EventType == k {
				out = append(out, ev.ID)
			}
		}
	}
	return out
}

// --filter across runs: only the matching items are delivered, in order;
// the cursor moves past the others (counted filtered, logged at debug), so
// a next run delivers only the new matching items and nothing twice.
func TestFilterAcrossRuns(t *testing.T) {
	e := newEnv(t, 40)
	tg := newTarget(t)
	prom := filepath.Join(e.dir, "m.prom")
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), "--filter", lifecycleFilter, "--metrics-file", prom, "-v"}
	r := runBin(t, e.vars(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	first := ilerttest.AlertEvents(40)
	want := wantIDs(t, first, 1, "alert-created", "alert-resolved")
	require.NotEmpty(t, want)
	require.Less(t, len(want), 40, "some items are filtered")
	assert.Equal(t, want, tg.got())
	assert.Contains(t, r.stderr, "filtered out")
	m, err := os.ReadFile(prom)
	require.NoError(t, err)
	assert.Contains(t, string(m), `edgepoll_items_total{outcome="filtered",reason="",sink="http"} `+itoa(40-len(want)))
	assert.Contains(t, string(m), `edgepoll_items_total{outcome="delivered",reason="",sink="http"} `+itoa(len(want)))

	// More items arrive; the next run delivers only the new matching ones.
	more := ilerttest.AlertEvents(60)[40:]
	e.api.Push(e2eKey, more...)
	r = runBin(t, e.vars("EDGEPOLL_FILTER="+lifecycleFilter), args[:len(args)-5]...) // the filter from the environment
	require.Equal(t, 0, r.code, r.stderr)
	want = append(want, wantIDs(t, more, 41, "alert-created", "alert-resolved")...)
	assert.Equal(t, want, tg.got(), "no filtered item delivered, nothing twice")

	// A third run finds nothing: filtered items are never redelivered.
	r = runBin(t, e.vars(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, want, tg.got())
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// --transform: the expression's first output, compact JSON, is the body;
// the headers still come from the original payload.
func TestTransformIntoBody(t *testing.T) {
	e := newEnv(t, 6)
	tg := newTarget(t)
	r := runBin(t, e.vars("EDGEPOLL_TRANSFORM={title: .summary, state: .status, alert: .id, source: .alertSource.name}"),
		"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("json"))
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6}, tg.got())
	for i, p := range ilerttest.AlertEvents(6) {
		var src map[string]any
		require.NoError(t, json.Unmarshal(p, &src))
		var want strings.Builder
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(map[string]any{"alert": src["id"], "source": src["alertSource"].(map[string]any)["name"],
			"state": src["status"], "title": src["summary"]}))
		id := int64(i + 1)
		assert.Equal(t, strings.TrimSpace(want.String()), tg.bodies[id], "item %d: the transform's output, compact", id)
		orig := poll.NewEvent(id, p)
		assert.Equal(t, orig.EventType, tg.hdrs[id].Get("X-ilert-Event-Type"), "metadata from the original payload")
		assert.Equal(t, orig.AlertID, tg.hdrs[id].Get("X-ilert-Alert-Id"))
	}
}

// An item on which the transform fails is not delivered and not lost: it
// is dead-lettered (reason transform) with its original payload; the run
// goes on and succeeds. A replay goes through the transform again.
func TestFailingTransformDeadLettered(t *testing.T) {
	e := newEnv(t, 9)
	tg := newTarget(t)
	dl := "file:" + filepath.Join(e.dir, "dead.jsonl")
	tr := `if .eventType == "alert-acknowledged" then error("no acknowledgements here") else {kind: .eventType} end`
	args := []string{"--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), "--dead-letter", dl, "--transform", tr}
	r := runBin(t, e.vars(), args...)
	require.Equal(t, 0, r.code, r.stderr)
	payloads := ilerttest.AlertEvents(9)
	acked := wantIDs(t, payloads, 1, "alert-acknowledged")
	require.NotEmpty(t, acked)
	assert.Len(t, tg.got(), 9-len(acked))
	for _, id := range acked {
		assert.NotContains(t, tg.got(), id)
	}
	f, err := os.Open(filepath.Join(e.dir, "dead.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	type record struct {
		ID      int64           `json:"id"`
		Reason  string          `json:"reason"`
		Error   string          `json:"error"`
		Payload json.RawMessage `json:"payload"`
	}
	var recs []record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var one record
		require.NoError(t, json.Unmarshal(sc.Bytes(), &one))
		recs = append(recs, one)
	}
	require.Len(t, recs, len(acked))
	for i, rec := range recs {
		assert.Equal(t, acked[i], rec.ID)
		assert.Equal(t, "transform", rec.Reason)
		assert.Contains(t, rec.Error, "no acknowledgements here")
		assert.JSONEq(t, string(payloads[rec.ID-1]), string(rec.Payload), "the original payload")
	}
	assert.Contains(t, r.stderr, "reason=transform")

	// Replaying with a transform that now works delivers them transformed.
	fixed := append(args[:len(args)-1:len(args)-1], `{kind: .eventType}`)
	r = runBin(t, e.vars(), append([]string{"dead-letter", "replay"}, fixed...)...)
	require.Equal(t, 0, r.code, r.stderr)
	got := tg.got()
	assert.Equal(t, acked, got[len(got)-len(acked):])
	assert.Equal(t, `{"kind":"alert-acknowledged"}`, tg.bodies[acked[0]])
}

// The expressions see the payload and nothing else: the connector key in
// the environment is not reachable through $ENV or env.
func TestNoEnvironmentInExpressions(t *testing.T) {
	e := newEnv(t, 3)
	tg := newTarget(t)
	r := runBin(t, e.vars("SOME_VAR=visible-outside"), "--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"),
		"--transform", `{k: $ENV.ILERT_EDGE_CONNECTOR_KEY, e: env.ILERT_EDGE_CONNECTOR_KEY, n: ($ENV | length), v: env.SOME_VAR}`)
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, tg.got(), 3)
	for id, body := range tg.bodies {
		assert.Equal(t, `{"e":null,"k":null,"n":0,"v":null}`, body, "item %d", id)
		assert.NotContains(t, body, e2eKey)
	}

	// input, files and modules do not even compile: exit 2 naming the flag.
	for _, tc := range []struct{ flag, expr, named string }{
		{"--filter", "input", "--filter"},
		{"--transform", `import "lib" as lib; .`, "--transform"},
		{"--filter", ".eventType ==", "--filter"},
	} {
		r := runBin(t, e.vars(), "--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"), tc.flag, tc.expr)
		assert.Equal(t, 2, r.code, r.stderr)
		assert.True(t, strings.HasPrefix(r.stderr, "edgepoll: error: "+tc.named+": "), r.stderr)
	}
	r = runBin(t, e.vars("EDGEPOLL_TRANSFORM={"), "--mode", "http", "--http-url", tg.srv.URL, "--state", e.state("sqlite"))
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "EDGEPOLL_TRANSFORM: ")
	assert.Len(t, tg.got(), 3, "nothing polled or delivered on a configuration error")
}
