package opscmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	stdoutsink "github.com/edgepoll/edgepoll/sinks/stdout"
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/deadletter"
	"github.com/edgepoll/edgepoll/state/jsonfile"
)

// usageErr is the test's configuration-error class (cmd's UsageError).
type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

func isUsage(err error) bool {
	var ue *usageErr
	return errors.As(err, &ue)
}

// testConn is a connection with key "k" on a json state file in a fresh
// directory, a file dead letter beside it and a stdout target writing to
// out; log collects the log lines.
func testConn(t *testing.T, out io.Writer) (c *Conn, log *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	log = &bytes.Buffer{}
	path := filepath.Join(dir, "s.json")
	c = &Conn{
		State: "json:" + path, Mode: "stdout", DeadLetter: "file:" + filepath.Join(dir, "dl.jsonl"),
		RunID: "run-0123", Log: slog.New(slog.NewTextHandler(log, nil)),
		Key:        func(context.Context) (string, error) { return "k", nil },
		StateKey:   func(key string) string { return "conn-" + key },
		ParseState: func() (state.Backend, string, error) { return jsonfile.Backend, path, nil },
		OpenStore: func(ctx context.Context) (poll.Store, error) {
			return jsonfile.Backend.Open(ctx, path, discard)
		},
		OpenDeadLetter: func(ctx context.Context) (deadletter.Store, error) { return deadletter.Open(ctx, c.DeadLetter) },
		NewSink: func(context.Context, io.Writer) (poll.Sink, error) {
			return poll.OneByOne(stdoutsink.New(out)), nil
		},
		Usage:   func(msg string) error { return &usageErr{msg} },
		IsUsage: isUsage,
	}
	return c, log
}

func show(t *testing.T, c *Conn) StateJSON {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, c.Show(context.Background(), &b, true))
	var s StateJSON
	require.NoError(t, json.Unmarshal(b.Bytes(), &s), b.String())
	return s
}

// The state commands refuse a store that does not exist (set-cursor
// --create makes it), take the lease and log what they changed.
func TestStateCommands(t *testing.T) {
	ctx := context.Background()
	c, log := testConn(t, io.Discard)
	var stderr bytes.Buffer
	err := c.Show(ctx, io.Discard, false)
	require.ErrorContains(t, err, "the state store does not exist")
	assert.ErrorContains(t, c.Reset(ctx, &stderr), "reset: --state json:")
	assert.ErrorContains(t, c.SetCursor(ctx, &stderr, 5, false), "set-cursor: --state json:")
	assert.True(t, isUsage(c.SetCursor(ctx, &stderr, -1, true)))
	_, err = os.Stat(strings.TrimPrefix(c.State, "json:"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing was created")

	require.NoError(t, c.SetCursor(ctx, &stderr, 5, true))
	assert.Contains(t, log.String(), "cursor set: the next poll has after-id=5")
	s := show(t, c)
	assert.Equal(t, "conn-k", s.Connection)
	require.NotNil(t, s.Cursor)
	assert.Equal(t, int64(5), *s.Cursor)
	var text bytes.Buffer
	require.NoError(t, c.Show(ctx, &text, false))
	assert.Contains(t, text.String(), "connection  conn-k\ncursor      5 (written ")

	require.NoError(t, c.Reset(ctx, &stderr))
	assert.Nil(t, show(t, c).Cursor)
	assert.Contains(t, log.String(), "cursor forgotten")
	assert.NotContains(t, log.String(), "--cluster-id is set")
	c.ClusterID = "prod"
	require.NoError(t, c.Reset(ctx, &stderr))
	assert.Contains(t, log.String(), "--cluster-id is set: in HA mode ilert keeps the cursor")
	assert.Empty(t, stderr.String())
}

// A lease held by a run: said on stderr, nothing changed.
func TestStateCommandsRefuseAHeldLease(t *testing.T) {
	ctx := context.Background()
	c, _ := testConn(t, io.Discard)
	var stderr bytes.Buffer
	require.NoError(t, c.SetCursor(ctx, &stderr, 5, true))
	store, err := c.OpenStore(ctx)
	require.NoError(t, err)
	defer store.Close()
	l, err := store.Acquire(ctx, "conn-k", "run-1")
	require.NoError(t, err)
	defer func() { _ = l.Release(ctx) }()

	assert.ErrorIs(t, c.Reset(ctx, &stderr), ErrReported)
	assert.Contains(t, stderr.String(), "edgepoll: error: reset: the lease is taken: ")
	assert.Contains(t, stderr.String(), "; nothing changed (stop that run, or wait until it is done)\n")
	assert.Equal(t, int64(5), *show(t, c).Cursor)
}

// import-ilagent moves the cursor forwards, backwards only with force.
func TestImportIlagent(t *testing.T) {
	ctx := context.Background()
	c, log := testConn(t, io.Discard)
	var stderr bytes.Buffer
	require.NoError(t, c.SetCursor(ctx, &stderr, 5, true))
	theirs := int64(3)
	read := func(_ context.Context, path, key string) (int64, error) {
		assert.Equal(t, "agent.db3", path)
		assert.Equal(t, "k", key)
		return theirs, nil
	}
	err := c.ImportIlagent(ctx, &stderr, "agent.db3", false, read)
	assert.ErrorContains(t, err, "import-ilagent: refusing to move the cursor backwards from 5 to the reference agent's 3 (that would deliver 2 items again")
	require.NoError(t, c.ImportIlagent(ctx, &stderr, "agent.db3", true, read))
	assert.Equal(t, int64(3), *show(t, c).Cursor)
	require.NoError(t, c.ImportIlagent(ctx, &stderr, "agent.db3", false, read))
	assert.Contains(t, log.String(), "cursor already at the reference agent's")
	theirs = 9
	require.NoError(t, c.ImportIlagent(ctx, &stderr, "agent.db3", false, read))
	assert.Equal(t, int64(9), *show(t, c).Cursor)

	err = c.ImportIlagent(ctx, &stderr, "agent.db3", false, func(context.Context, string, string) (int64, error) {
		return 0, errors.New("no such table")
	})
	assert.EqualError(t, err, "state import-ilagent: no such table")
}

// ShowAll lists every connection; one that cannot be read is reported and
// the others are still listed.
func TestShowAll(t *testing.T) {
	ctx := context.Background()
	a, _ := testConn(t, io.Discard)
	b, _ := testConn(t, io.Discard)
	require.NoError(t, b.SetCursor(ctx, io.Discard, 7, true))
	conns := []Named{{Name: "a", Label: "connections[0] (a)", Conn: a}, {Name: "b", Label: "connections[1] (b)", Conn: b}}
	var stdout, stderr bytes.Buffer
	require.ErrorIs(t, ShowAll(ctx, &stdout, &stderr, conns, false), ErrReported)
	assert.True(t, strings.HasPrefix(stderr.String(), "edgepoll: error: connections[0] (a): --state json:"), stderr.String())
	assert.True(t, strings.HasPrefix(stdout.String(), "\nname        b\nstate       "+b.State+"\nconnection  conn-k\ncursor      7"), stdout.String())

	require.NoError(t, a.SetCursor(ctx, io.Discard, 1, true))
	stdout.Reset()
	require.NoError(t, ShowAll(ctx, &stdout, &stderr, conns, true))
	var all []FleetStateJSON
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &all))
	require.Len(t, all, 2)
	assert.Equal(t, "b", all[1].Name)
	assert.Equal(t, int64(7), *all[1].Cursor)

	stdout.Reset()
	require.NoError(t, ShowAll(ctx, &stdout, &stderr, nil, true))
	assert.Equal(t, "[]\n", stdout.String())
}

// The dead-letter commands refuse none and a dead letter that does not
// exist; list prints the records, replay delivers and empties them.
func TestDeadLetterCommands(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	c, log := testConn(t, &out)
	err := c.ListDeadLetter(ctx, &out)
	assert.ErrorContains(t, err, "--dead-letter: "+strings.TrimPrefix(c.DeadLetter, "file:")+" does not exist (no item was ever")
	assert.False(t, isUsage(err))

	dl, err := c.OpenDeadLetter(ctx)
	require.NoError(t, err)
	require.NoError(t, dl.Append(ctx, "conn-k", deadletter.Record{ID: 4, Connection: "conn-k", Reason: "http_404",
		SkippedAt: time.Unix(0, 0), Payload: []byte(`{"n":4}`)}))
	require.NoError(t, dl.Close())
	require.NoError(t, c.ListDeadLetter(ctx, &out))
	assert.Equal(t, "4\thttp_404\t1970-01-01T00:00:00Z\n", out.String())
	assert.Contains(t, log.String(), "dead letter listed")

	out.Reset()
	require.NoError(t, c.ReplayDeadLetter(ctx, io.Discard))
	assert.Equal(t, "{\"n\":4}\n", out.String())
	require.NoError(t, c.ReplayDeadLetter(ctx, io.Discard))
	assert.Contains(t, log.String(), "the dead letter is empty: nothing to replay")

	for spec, want := range map[string]string{"none": "--dead-letter: none keeps nothing", "bogus:x": "--dead-letter: "} {
		c.DeadLetter = spec
		err := c.ListDeadLetter(ctx, &out)
		assert.ErrorContains(t, err, want)
		assert.True(t, isUsage(err), spec)
	}
	c.DeadLetter = deadletter.InState
	assert.ErrorContains(t, c.ListDeadLetter(ctx, &out), "the state store does not exist")
	assert.Equal(t, "state (file:"+strings.TrimPrefix(c.State, "json:")+".deadletter.jsonl)", c.deadLetterName())
}

// check writes its four lines; a configuration error stops it.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	api := ilerttest.New("k")
	srv := api.Start()
	defer srv.Close()
	c, _ := testConn(t, io.Discard)
	c.APIURL = srv.URL
	probed := ""
	writable := func(path string) error { probed = path; return nil }
	var out bytes.Buffer
	require.NoError(t, c.Check(ctx, &out, time.Second, writable))
	assert.Equal(t, "configuration: ok (mode stdout, state "+c.State+")\n"+
		"ilert key: ok (accepted; 0 items waiting after cursor 0)\ntarget stdout: ok\n"+
		"state "+c.State+": ok (does not exist yet: the first run creates it and starts from the oldest queued event)\n", out.String())
	assert.Equal(t, strings.TrimPrefix(c.State, "json:"), probed)

	require.NoError(t, c.SetCursor(ctx, io.Discard, 2, true))
	c.ClusterID = "prod"
	out.Reset()
	require.NoError(t, c.Check(ctx, &out, time.Second, writable))
	assert.Contains(t, out.String(), "ilert key: ok (skipped: with --cluster-id")
	assert.Contains(t, out.String(), ": ok (cursor 2; read and write ok)\n")

	c.NewSink = func(context.Context, io.Writer) (poll.Sink, error) { return nil, &usageErr{"--mode: bad"} }
	out.Reset()
	assert.EqualError(t, c.Check(ctx, &out, time.Second, writable), "--mode: bad")
	assert.NotContains(t, out.String(), "target")

	c.Key = func(context.Context) (string, error) { return "", errors.New("ssm: denied") }
	out.Reset()
	assert.ErrorIs(t, c.Check(ctx, &out, time.Second, writable), ErrReported)
	assert.Equal(t, "configuration: ok (mode stdout, state "+c.State+")\nconnector key: FAIL: ssm: denied\n", out.String())
	c.Key = func(context.Context) (string, error) { return "", &usageErr{"ILERT_EDGE_CONNECTOR_KEY: is required"} }
	out.Reset()
	assert.True(t, isUsage(c.Check(ctx, &out, time.Second, writable)))
	assert.Empty(t, out.String())
}
