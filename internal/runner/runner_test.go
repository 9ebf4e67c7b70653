package runner_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/internal/runner"
	"github.com/edgepoll/edgepoll/internal/testenv"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/sinks/stdout"
	"github.com/edgepoll/edgepoll/state/jsonfile"
)

// rig is a fake ilert API with items queued for each key and a JSON state
// file; conn builds a runner.Conn on them that delivers to stdout.
type rig struct {
	api    *ilerttest.API
	url    string
	state  string
	opened atomic.Int32 // stores opened
}

func newRig(t *testing.T, keys []string, items int) *rig {
	api := ilerttest.New(keys...)
	for _, k := range keys {
		api.Push(k, ilerttest.AlertEvents(items)...)
	}
	srv := api.Start()
	t.Cleanup(srv.Close)
	return &rig{api: api, url: srv.URL, state: filepath.Join(t.TempDir(), "state.json")}
}

func (r *rig) conn(name, key string) *runner.Conn {
	return &runner.Conn{
		Name: name, Mode: "stdout", APIURL: r.url, State: "json:" + r.state, DeadLetter: "none",
		PollInterval: 5 * time.Second, StandbyInterval: 5 * time.Second,
		Key:       func(context.Context) (string, error) { return key, nil },
		StateKeys: func(key string) (string, *poll.FanOut) { return poll.ConnectionID(key), nil },
		OpenStore: func(ctx context.Context, log *slog.Logger) (poll.Store, error) {
			r.opened.Add(1)
			return jsonfile.Open(ctx, r.state, log)
		},
		OpenDeadLetter: func(context.Context) (poll.DeadLetter, error) { return nil, nil },
		NewSink: func(_ context.Context, _ *slog.Logger, w io.Writer) (poll.Sink, error) {
			return poll.OneByOne(stdout.New(w)), nil
		},
	}
}

func options(log, out io.Writer) runner.Options {
	return runner.Options{Owner: runner.RunID(), Log: slog.New(slog.NewTextHandler(log, nil)), Stdout: out,
		MaxParallel: 2, IsConfigError: func(error) bool { return false }}
}

// The connection given by flags (NewOne): delivered, logged without a
// connection name, no run summary; a second run delivers nothing again.
func TestOneConnection(t *testing.T) {
	r := newRig(t, []string{"iec1-a"}, 3)
	var log, out testenv.SyncBuffer
	run := func() int {
		rn := runner.NewOne(r.conn("", "iec1-a"), options(&log, &out))
		defer rn.Close()
		code, err := rn.Run(context.Background())
		require.NoError(t, err)
		return code
	}
	require.Equal(t, runner.ExitOK, run(), log.String())
	require.Equal(t, runner.ExitOK, run(), log.String())
	assert.Equal(t, 3, strings.Count(out.String(), "\n"), "each item once, across two runs")
	assert.Contains(t, log.String(), `msg="cycle done"`)
	assert.NotContains(t, log.String(), "connection=")
	assert.NotContains(t, log.String(), "run done")
}

// A set-up error of the connection given by flags ends its run: Run
// returns it (cmd prints it and exits), nothing is polled.
func TestOneConnectionSetupErrorEndsTheRun(t *testing.T) {
	r := newRig(t, []string{"iec1-a"}, 3)
	c := r.conn("", "iec1-a")
	c.Key = func(context.Context) (string, error) { return "", errors.New("no key here") }
	var log, out testenv.SyncBuffer
	rn := runner.NewOne(c, options(&log, &out))
	defer rn.Close()
	code, err := rn.Run(context.Background())
	require.ErrorContains(t, err, "no key here")
	assert.Equal(t, runner.ExitFailed, code)
	assert.Empty(t, r.api.Requests())
}

// Connections of a file (New): one whose key cannot be had fails alone,
// the others deliver, each log line names its connection, the summary
// names every outcome, and the connections on one --state share one open
// store.
func TestFileConnectionsFailAlone(t *testing.T) {
	keys := []string{"iec1-a", "iec1-b", "iec1-c"}
	r := newRig(t, keys, 2)
	var conns []*runner.Conn
	for i, k := range keys {
		conns = append(conns, r.conn(fmt.Sprintf("c%d", i), k))
	}
	conns[1].Key = func(context.Context) (string, error) { return "", errors.New("no key here") }
	var log, out testenv.SyncBuffer
	opts := options(&log, &out)
	opts.MaxParallel = 1 // one store open at a time: it stays open for all
	rn := runner.New(conns, opts)
	code, err := rn.Run(context.Background())
	rn.Close()
	require.NoError(t, err)
	assert.Equal(t, runner.ExitFailed, code)
	assert.Equal(t, 4, strings.Count(out.String(), "\n"), "c0's and c2's items")
	assert.Contains(t, log.String(), `msg="run done: some connections failed" connections=3 failed=1 outcomes="c0=ok c1=failed c2=ok"`)
	assert.Contains(t, log.String(), `msg="cycle done" connection=c0`)
	assert.Contains(t, log.String(), `connection=c1 err="no key here"`)
	assert.EqualValues(t, 1, r.opened.Load(), "one store for the connections of one --state")
}

// A daemon of a file's connections (Loop): each runs its cycles until ctx
// ends, then the run ends 0 with every cursor persisted.
func TestFileConnectionsLoop(t *testing.T) {
	keys := []string{"iec1-a", "iec1-b"}
	r := newRig(t, keys, 2)
	conns := []*runner.Conn{r.conn("c0", keys[0]), r.conn("c1", keys[1])}
	var log, out testenv.SyncBuffer
	opts := options(&log, &out)
	opts.Loop = true
	rn := runner.New(conns, opts)
	defer rn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		code, _ := rn.Run(ctx)
		done <- code
	}()
	require.Eventually(t, func() bool { return strings.Count(out.String(), "\n") == 4 }, 10*time.Second, 10*time.Millisecond, log.String())
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, runner.ExitOK, code)
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not stop")
	}
	assert.Contains(t, log.String(), `msg="connection started" connection=c0`)
	assert.Contains(t, log.String(), `msg="stopped: cursors persisted, leases released"`)
	for _, k := range keys {
		info, err := inspect(t, r, k)
		require.NoError(t, err)
		assert.Positive(t, info.Cursor, k)
	}
}

func inspect(t *testing.T, r *rig, key string) (poll.StateInfo, error) {
	s, err := jsonfile.Open(context.Background(), r.state, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer s.Close()
	return s.Inspect(context.Background(), poll.ConnectionID(key))
}

// A one-shot run of a file's HA connection acknowledges its last items with
// the final poll (limit=1, last-processed-id), as the single connection's
// does: the next run, of any instance, is not handed them again.
func TestFileConnectionHAFinalAck(t *testing.T) {
	r := newRig(t, []string{"iec1-a"}, 2)
	r.api.SetLeaderTTL(0)
	c := r.conn("c0", "iec1-a")
	c.ClusterID, c.InstanceID = "prod", "i-1"
	var log, out testenv.SyncBuffer
	rn := runner.New([]*runner.Conn{c}, options(&log, &out))
	code, err := rn.Run(context.Background())
	rn.Close()
	require.NoError(t, err)
	require.Equal(t, runner.ExitOK, code, log.String())
	reqs := r.api.Requests()
	require.Len(t, reqs, 2, "the poll, then the final poll")
	assert.Equal(t, map[string]string{"limit": "1", "cluster-id": "prod", "instance-id": "i-1", "last-processed-id": "2"}, reqs[1].Query)
}
