package route_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/sinks/route"
)

// recorder is a pipelined sink: it reports every event at once, in reverse
// order, and keeps what it was given.
type recorder struct {
	got  []poll.Event
	errs map[int64]error
}

func (r *recorder) Send(_ context.Context, evs []poll.Event, report func(int, error) bool) {
	r.got = append(r.got, evs...)
	for i := len(evs) - 1; i >= 0; i-- {
		report(i, r.errs[evs[i].ID])
	}
}
func (r *recorder) Close() error { return nil }

type outcome map[int64]error

func send(t *testing.T, s poll.Sink, evs ...poll.Event) outcome {
	t.Helper()
	out := outcome{}
	s.Send(context.Background(), evs, func(i int, err error) bool {
		_, dup := out[evs[i].ID]
		require.False(t, dup, "reported twice")
		out[evs[i].ID] = err
		return true
	})
	return out
}

func ev(id int64, payload string) poll.Event { return poll.NewEvent(id, []byte(payload)) }

func TestCompileErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct{ filter, transform, field string }{
		{filter: ".eventType ==", field: "filter"},
		{transform: "{a: }", field: "transform"},
		{filter: "nosuchfunction", field: "filter"},
		{transform: "input", field: "transform"},
		{filter: "[inputs]", field: "filter"},
		{transform: `import "x" as x; .`, field: "transform"},
		{filter: `include "x"; .`, field: "filter"},
		{filter: `$undefined`, field: "filter"},
		{transform: `debug`, field: "transform"},
	} {
		_, err := route.New(&recorder{}, tc.filter, tc.transform)
		var ce *poll.ConfigError
		require.ErrorAs(t, err, &ce, "%+v", tc)
		assert.Equal(t, tc.field, ce.Field)
	}
}

func TestFilterPassesOnlyTrue(t *testing.T) {
	rec := &recorder{}
	s, err := route.New(rec, `.v`, "")
	require.NoError(t, err)
	out := send(t, s,
		ev(1, `{"v":true}`),
		ev(2, `{"v":false}`),
		ev(3, `{"v":1}`), // truthy, but not true
		ev(4, `{"v":"true"}`),
		ev(5, `{}`),
		ev(6, `{"v":true,"eventType":"alert-created"}`),
	)
	assert.NoError(t, out[1])
	for _, id := range []int64{2, 3, 4, 5} {
		assert.ErrorIs(t, out[id], poll.ErrFiltered, "item %d", id)
	}
	assert.NoError(t, out[6])
	require.Len(t, rec.got, 2)
	assert.Equal(t, []int64{1, 6}, []int64{rec.got[0].ID, rec.got[1].ID})
	assert.Equal(t, `{"v":true,"eventType":"alert-created"}`, string(rec.got[1].Payload), "a filter alone delivers the payload unchanged")

	// Only the first output counts; no output passes the item over.
	s, err = route.New(&recorder{}, `true, false`, "")
	require.NoError(t, err)
	assert.NoError(t, send(t, s, ev(1, `{}`))[1])
	s, err = route.New(&recorder{}, `empty`, "")
	require.NoError(t, err)
	assert.ErrorIs(t, send(t, s, ev(1, `{}`))[1], poll.ErrFiltered)
}

func TestTransformReplacesPayloadKeepsMetadata(t *testing.T) {
	rec := &recorder{}
	s, err := route.New(rec, "", `{title: .summary, big: .n, kind: .eventType}, "second"`)
	require.NoError(t, err)
	out := send(t, s, ev(7, `{"id":"42","eventType":"alert-created","summary":"Disk full",
		"timestamp":"2026-01-01T00:00:00Z","n":12345678901234567890}`))
	require.NoError(t, out[7])
	require.Len(t, rec.got, 1)
	got := rec.got[0]
	assert.Equal(t, `{"big":12345678901234567890,"kind":"alert-created","title":"Disk full"}`, string(got.Payload),
		"first output, compact, numbers exact")
	assert.Equal(t, int64(7), got.ID)
	assert.Equal(t, "alert-created", got.EventType)
	assert.Equal(t, "42", got.AlertID)
	assert.Equal(t, "2026-01-01T00:00:00Z", got.Timestamp)

	s, err = route.New(rec, "", `.summary`)
	require.NoError(t, err)
	send(t, s, ev(8, `{"summary":"a \"quoted\"\nline"}`))
	assert.Equal(t, `"a \"quoted\"\nline"`, string(rec.got[1].Payload), "a string is delivered as JSON")
}

func TestRunTimeFailuresArePermanent(t *testing.T) {
	cases := []struct{ filter, transform, reason string }{
		{filter: `error("no")`, reason: "filter"},
		{filter: `.a + 1`, reason: "filter"}, // string + number: a type error
		{transform: `.a | keys`, reason: "transform"},
		{transform: `empty`, reason: "transform"},
		{transform: `def f: f; f`, reason: "transform"},                          // never ends: the time limit
		{filter: `[limit(100000000; repeat(1))] | length > 0`, reason: "filter"}, // too long
	}
	for _, tc := range cases {
		t.Run(tc.filter+tc.transform, func(t *testing.T) {
			rec := &recorder{}
			s, err := route.New(rec, tc.filter, tc.transform)
			require.NoError(t, err)
			start := time.Now()
			out := send(t, s, ev(1, `{"a":"x"}`), ev(2, `{"a":"y"}`))
			require.Less(t, time.Since(start), 30*time.Second)
			for _, id := range []int64{1, 2} {
				require.Error(t, out[id])
				assert.True(t, poll.IsPermanent(out[id]), "%v", out[id])
				assert.Equal(t, tc.reason, poll.ReasonOf(out[id]))
			}
			assert.Empty(t, rec.got, "nothing delivered")
		})
	}
}

// The expressions see the payload and nothing else: the process
// environment is not there ($ENV, env), input is refused at compile time.
func TestNoEnvironment(t *testing.T) {
	t.Setenv("ILERT_EDGE_CONNECTOR_KEY", "iec1-secret-key")
	rec := &recorder{}
	s, err := route.New(rec, "", `{a: $ENV.ILERT_EDGE_CONNECTOR_KEY, b: env.ILERT_EDGE_CONNECTOR_KEY, n: ($ENV|length), m: (env|length)}`)
	require.NoError(t, err)
	require.NoError(t, send(t, s, ev(1, `{}`))[1])
	assert.Equal(t, `{"a":null,"b":null,"m":0,"n":0}`, string(rec.got[0].Payload))
}

// A stop (the caller's context ends) is not the item's fault: nothing is
// reported, the item stays undelivered.
func TestStopLeavesItemsUnreported(t *testing.T) {
	rec := &recorder{}
	s, err := route.New(rec, `def f: f; f`, "")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	reported := 0
	s.Send(ctx, []poll.Event{ev(1, `{}`)}, func(int, error) bool { reported++; return true })
	assert.Zero(t, reported)
}

// Reports of the inner sink are mapped back to the batch's indexes; a
// report that asks to stop stops the route before the inner sink starts.
func TestIndexesMapBack(t *testing.T) {
	rec := &recorder{errs: map[int64]error{4: poll.Retryable("http_503", errors.New("x"))}}
	s, err := route.New(rec, `.keep`, "")
	require.NoError(t, err)
	out := send(t, s, ev(1, `{"keep":false}`), ev(2, `{"keep":true}`), ev(3, `{}`), ev(4, `{"keep":true}`), ev(5, `{"keep":true}`))
	assert.Len(t, out, 5)
	assert.ErrorIs(t, out[1], poll.ErrFiltered)
	assert.NoError(t, out[2])
	assert.ErrorIs(t, out[3], poll.ErrFiltered)
	assert.Equal(t, "http_503", poll.ReasonOf(out[4]))
	assert.NoError(t, out[5])

	rec = &recorder{}
	s, _ = route.New(rec, `.keep`, "")
	s.Send(context.Background(), []poll.Event{ev(1, `{}`), ev(2, `{"keep":true}`), ev(3, `{"keep":true}`)},
		func(int, error) bool { return false })
	assert.Empty(t, rec.got, "no new delivery once the cycle said stop")
}
