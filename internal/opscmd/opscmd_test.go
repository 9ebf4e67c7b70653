package opscmd

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	stdoutsink "github.com/edgepoll/edgepoll/sinks/stdout"
	"github.com/edgepoll/edgepoll/state/deadletter"
	"github.com/edgepoll/edgepoll/state/jsonfile"
)

var discard = slog.New(slog.DiscardHandler)

func TestPrintStateAndJSON(t *testing.T) {
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.FixedZone("x", 3600))
	info := poll.StateInfo{HasCursor: true, Cursor: 42, UpdatedAt: at, Refusals: 2,
		Lease: poll.LeaseInfo{Held: true, Holder: "host-1", ExpiresAt: at.Add(time.Minute)}}
	var b bytes.Buffer
	PrintState(&b, "json:s.json", &Instance{ClusterID: "prod"}, "c1", info)
	assert.Equal(t, "state       json:s.json\nconnection  c1\ncursor      42 (written 2026-05-04T09:00:00Z)\n"+
		"lease       held by host-1 until 2026-05-04T09:01:00Z\nrefusals    2\n"+
		"note        --cluster-id is set: in HA mode ilert keeps the cursor, this one is not used\n"+
		"instance    none given (--instance-id): each run is a new instance with a random id and no progress\n", b.String())

	b.Reset()
	PrintState(&b, "json:s.json", nil, "c1", poll.StateInfo{Lease: poll.LeaseInfo{Held: true}})
	assert.Equal(t, "state       json:s.json\nconnection  c1\ncursor      none (the next poll has after-id=0)\n"+
		"lease       held by another run\nrefusals    0\n", b.String())

	j, err := json.Marshal(ToStateJSON("c1", info, nil))
	require.NoError(t, err)
	assert.JSONEq(t, `{"connection":"c1","cursor":42,"updated_at":"2026-05-04T09:00:00Z",
		"lease":{"held":true,"holder":"host-1","expires_at":"2026-05-04T09:01:00Z"},"refusals":2}`, string(j))
	j, err = json.Marshal(ToStateJSON("c1", poll.StateInfo{}, nil))
	require.NoError(t, err)
	assert.JSONEq(t, `{"connection":"c1","cursor":null,"updated_at":null,
		"lease":{"held":false,"holder":null,"expires_at":null},"refusals":0}`, string(j))

	// An HA instance's own progress: the last-processed-id its next poll sends.
	node1 := &Instance{ClusterID: "prod", InstanceID: "node-1", Progress: poll.StateInfo{HasCursor: true, Cursor: 5, UpdatedAt: at}}
	b.Reset()
	PrintState(&b, "json:s.json", node1, "c1", poll.StateInfo{})
	assert.Contains(t, b.String(), "\ninstance    node-1 in cluster prod: last-processed-id 5 (written 2026-05-04T09:00:00Z)\n")
	b.Reset()
	PrintState(&b, "json:s.json", &Instance{ClusterID: "prod", InstanceID: "node-2"}, "c1", poll.StateInfo{})
	assert.Contains(t, b.String(), "\ninstance    node-2 in cluster prod: no progress yet (its first poll sends no last-processed-id)\n")
	j, err = json.Marshal(ToStateJSON("c1", poll.StateInfo{}, node1))
	require.NoError(t, err)
	assert.JSONEq(t, `{"connection":"c1","cursor":null,"updated_at":null,
		"lease":{"held":false,"holder":null,"expires_at":null},"refusals":0,
		"ha":{"cluster_id":"prod","instance_id":"node-1","last_processed_id":5,"updated_at":"2026-05-04T09:00:00Z"}}`, string(j))
	j, err = json.Marshal(ToStateJSON("c1", poll.StateInfo{}, &Instance{ClusterID: "prod"}))
	require.NoError(t, err)
	assert.Contains(t, string(j), `"ha":{"cluster_id":"prod","instance_id":null,"last_processed_id":null,"updated_at":null}`)

	assert.Equal(t, "none", Was(0, false))
	assert.Equal(t, int64(7), Was(7, true))
}

func deadLetter(t *testing.T, ids ...int64) deadletter.Store {
	t.Helper()
	dl, err := deadletter.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "dl.jsonl"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = dl.Close() })
	for _, id := range ids {
		require.NoError(t, dl.Append(context.Background(), "c1", deadletter.Record{ID: id, Connection: "c1",
			Reason: "http_404", SkippedAt: time.Unix(0, 0), Payload: []byte(`{"n":` + string(rune('0'+id)) + `}`)}))
	}
	return dl
}

// Replay delivers in order and removes each item as it is delivered.
func TestReplayDeliversInOrderAndEmpties(t *testing.T) {
	ctx := context.Background()
	dl := deadLetter(t, 1, 2, 3)
	recs, err := dl.List(ctx, "c1")
	require.NoError(t, err)
	var b bytes.Buffer
	PrintRecords(&b, recs[:1])
	assert.Equal(t, "1\thttp_404\t1970-01-01T00:00:00Z\n", b.String())

	b.Reset()
	sink := poll.OneByOne(stdoutsink.New(&b))
	assert.True(t, Replay(ctx, sink, dl, "c1", recs, discard))
	assert.Equal(t, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n", b.String())
	left, err := dl.List(ctx, "c1")
	require.NoError(t, err)
	assert.Empty(t, left)
}

// A target that fails stops the replay; nothing is removed.
func TestReplayStopsAtTheFirstFailure(t *testing.T) {
	ctx := context.Background()
	dl := deadLetter(t, 1, 2)
	recs, err := dl.List(ctx, "c1")
	require.NoError(t, err)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.NoError(t, w.Close()) // every write fails
	assert.False(t, Replay(ctx, poll.OneByOne(stdoutsink.New(w)), dl, "c1", recs, discard))
	left, err := dl.List(ctx, "c1")
	require.NoError(t, err)
	assert.Len(t, left, 2)
}

func TestCheckStore(t *testing.T) {
	ctx := context.Background()
	store, err := jsonfile.Open(ctx, filepath.Join(t.TempDir(), "s.json"), discard)
	require.NoError(t, err)
	note, err := CheckStore(ctx, store, "c1", "check-1")
	require.NoError(t, err)
	assert.Equal(t, "no cursor yet; read and write ok", note)

	l, err := store.Acquire(ctx, "c1", "run-1")
	require.NoError(t, err)
	defer func() { _ = l.Release(ctx) }()
	note, err = CheckStore(ctx, store, "c1", "check-2")
	require.NoError(t, err)
	assert.Contains(t, note, "no cursor yet; ")
	assert.Contains(t, note, ", so writing was not tried")
}

func TestChecker(t *testing.T) {
	var b bytes.Buffer
	c := &Checker{W: &b}
	c.Line("a", "", nil)
	c.Line("b", "note", nil)
	assert.False(t, c.Failed)
	c.Line("c", "", assert.AnError)
	assert.True(t, c.Failed)
	assert.Equal(t, "a: ok\nb: ok (note)\nc: FAIL: "+assert.AnError.Error()+"\n", b.String())
}
