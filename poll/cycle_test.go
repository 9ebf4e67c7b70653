package poll_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// memStore is an in-process Store for testing the cycle's logic; the real
// backends run the same cycle in the end-to-end tests.
type memStore struct {
	mu       sync.Mutex
	cursors  map[string]int64
	refusals map[string]int
	stats    map[string]poll.Stats
	held     map[string]string
	saves    []int64
	syncs    int
	failAt   int64 // Save of this cursor fails
	// onAcquire, if set, is called by every Acquire that took the lease.
	onAcquire func(conn string)
	// sameOwnerTakesOver: as DynamoDB's, an Acquire by the owner that
	// holds the lease takes it again; the lease it held is lost.
	sameOwnerTakesOver bool
	gen                map[string]int
}

func newMemStore() *memStore {
	return &memStore{cursors: map[string]int64{}, refusals: map[string]int{}, stats: map[string]poll.Stats{}, held: map[string]string{}}
}

func (s *memStore) Acquire(_ context.Context, conn, owner string) (poll.Lease, error) {
	s.mu.Lock()
	if h, ok := s.held[conn]; ok && (!s.sameOwnerTakesOver || h != owner) {
		s.mu.Unlock()
		return nil, fmt.Errorf("held by %s: %w", h, poll.ErrLeaseHeld)
	}
	s.held[conn] = owner
	if s.gen == nil {
		s.gen = map[string]int{}
	}
	s.gen[conn]++
	gen := s.gen[conn]
	s.mu.Unlock()
	if s.onAcquire != nil {
		s.onAcquire(conn)
	}
	return &memLease{s: s, conn: conn, gen: gen}, nil
}
func (s *memStore) Close() error { return nil }

type memLease struct {
	s    *memStore
	conn string
	gen  int // the lease's generation: an older one is lost
}

func (l *memLease) Load(context.Context) (poll.Position, bool, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	c, ok := l.s.cursors[l.conn]
	return poll.Position{Cursor: c, Refusals: l.s.refusals[l.conn]}, ok, nil
}
func (l *memLease) Save(_ context.Context, p poll.Position) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	c := p.Cursor
	if l.gen != l.s.gen[l.conn] {
		return fmt.Errorf("a newer lease owns the cursor: %w", poll.ErrLeaseLost)
	}
	if l.s.failAt != 0 && c == l.s.failAt {
		return errors.New("disk full")
	}
	l.s.saves = append(l.s.saves, c)
	if c > l.s.cursors[l.conn] {
		l.s.cursors[l.conn] = c
		l.s.refusals[l.conn] = p.Refusals
	}
	return nil
}
func (l *memLease) LoadStats(context.Context) (poll.Stats, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.s.stats[l.conn], nil
}
func (l *memLease) SaveStats(_ context.Context, st poll.Stats) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.stats[l.conn] = st
	return nil
}

// CheapSave: a memory write, saved in the caller after every item.
func (l *memLease) CheapSave() bool { return true }

func (l *memLease) Sync(context.Context) error {
	l.s.mu.Lock()
	l.s.syncs++
	l.s.mu.Unlock()
	return nil
}
func (l *memLease) Release(context.Context) error {
	l.s.mu.Lock()
	if l.gen == l.s.gen[l.conn] {
		delete(l.s.held, l.conn)
	}
	l.s.mu.Unlock()
	return nil
}

// scriptedSink delivers sequentially and fails items by id as told.
type scriptedSink struct {
	mu        sync.Mutex
	got       []int64
	fail      map[int64]error
	onDeliver func(ev poll.Event)
}

func (s *scriptedSink) Deliver(_ context.Context, ev poll.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onDeliver != nil {
		s.onDeliver(ev)
	}
	if err := s.fail[ev.ID]; err != nil {
		return err
	}
	s.got = append(s.got, ev.ID)
	return nil
}
func (s *scriptedSink) Close() error { return nil }

func (s *scriptedSink) ids() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.got...)
}

// testInv is the invocation of the tests' cycles.
var testInv = poll.Invocation{Owner: "test"}

type fixture struct {
	api   *ilerttest.API
	store *memStore
	cycle *poll.Cycle
}

func newFixture(t *testing.T, sink poll.Sink, n int) *fixture {
	t.Helper()
	api := ilerttest.New(testKey)
	api.Push(testKey, ilerttest.AlertEvents(n)...)
	srv := api.Start()
	t.Cleanup(srv.Close)
	f := &fixture{api: api, store: newMemStore()}
	f.cycle = &poll.Cycle{Client: newClient(t, srv.URL), Sink: sink, Store: f.store, Conn: poll.ConnectionID(testKey)}
	return f
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestCycleDeliversAllInOrderAndDrains(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 250)
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, seq(1, 250), sink.ids())
	assert.Equal(t, 3, sum.Polls, "100 + 100 + 50")
	assert.Equal(t, 250, sum.Delivered)
	assert.Equal(t, int64(250), sum.Cursor)
	assert.Equal(t, int64(250), f.store.cursors[f.cycle.Conn])
	assert.Equal(t, seq(1, 250), f.store.saves, "cursor saved after every item")
	assert.Equal(t, 3, f.store.syncs, "synced at the end of each batch")
	assert.Empty(t, f.store.held, "lease released")

	// A second cycle finds nothing new and redelivers nothing.
	sum, err = f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, 0, sum.Polled)
	assert.Len(t, sink.ids(), 250)
	reqs := f.api.Requests()
	assert.Equal(t, "250", reqs[len(reqs)-1].Query["after-id"])
}

func TestCycleStopsAfterTenPolls(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 1234)
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, 10, sum.Polls)
	assert.Equal(t, 1000, sum.Delivered)
	assert.True(t, sum.Full, "more is waiting")
	sum, err = f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, 234, sum.Delivered)
	assert.Equal(t, seq(1, 1234), sink.ids())
}

func TestCycleRetryableFailureStopsAndResumes(t *testing.T) {
	sink := &scriptedSink{fail: map[int64]error{7: poll.Retryable("http_503", errors.New("503"))}}
	f := newFixture(t, poll.OneByOne(sink), 10)
	sum, err := f.cycle.Run(context.Background(), testInv)
	var ce *poll.CycleError
	require.ErrorAs(t, err, &ce)
	assert.EqualValues(t, "delivery", ce.Kind)
	assert.EqualValues(t, "http_503", ce.Reason)
	assert.Equal(t, seq(1, 6), sink.ids())
	assert.Equal(t, int64(6), sum.Cursor)
	assert.Equal(t, int64(6), f.store.cursors[f.cycle.Conn])
	assert.Empty(t, f.store.held)

	delete(sink.fail, 7)
	_, err = f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, seq(1, 10), sink.ids(), "resumed at the failed item, nothing lost, nothing twice")
}

func TestCyclePermanentFailureIsSkipped(t *testing.T) {
	sink := &scriptedSink{fail: map[int64]error{3: poll.Permanent("http_400", errors.New("400"))}}
	f := newFixture(t, poll.OneByOne(sink), 5)
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 2, 4, 5}, sink.ids())
	assert.Equal(t, 1, sum.Skipped)
	assert.Equal(t, 4, sum.Delivered)
	assert.Equal(t, int64(5), f.store.cursors[f.cycle.Conn])
}

func TestCycleUnclassifiedErrorIsRetryable(t *testing.T) {
	sink := &scriptedSink{fail: map[int64]error{2: errors.New("boom")}}
	f := newFixture(t, poll.OneByOne(sink), 5)
	_, err := f.cycle.Run(context.Background(), testInv)
	require.Error(t, err)
	assert.Equal(t, int64(1), f.store.cursors[f.cycle.Conn])
}

// pipeSink reports every item at once, in reverse order, with given errors:
// the cycle must still move the cursor over the longest good prefix only.
type pipeSink struct{ errs map[int64]error }

func (p pipeSink) Send(_ context.Context, evs []poll.Event, report func(int, error) bool) {
	for i := len(evs) - 1; i >= 0; i-- {
		report(i, p.errs[evs[i].ID])
	}
}
func (pipeSink) Close() error { return nil }

func TestCyclePrefixRuleForPipelinedSinks(t *testing.T) {
	f := newFixture(t, pipeSink{errs: map[int64]error{
		4: poll.Permanent("too_large", errors.New("x")),
		6: poll.Retryable("timeout", errors.New("y")),
	}}, 10)
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.Error(t, err)
	assert.Equal(t, int64(5), f.store.cursors[f.cycle.Conn], "1-3 ok, 4 skipped, 5 ok, 6 failed: cursor 5")
	assert.Equal(t, 4, sum.Delivered)
	assert.Equal(t, 1, sum.Skipped)
	for _, s := range f.store.saves {
		assert.LessOrEqual(t, s, int64(5))
	}
}

type lazySink struct{}

func (lazySink) Send(_ context.Context, evs []poll.Event, report func(int, error) bool) {
	report(0, nil)
}
func (lazySink) Close() error { return nil }

func TestCycleUnreportedItemsFailTheCycle(t *testing.T) {
	f := newFixture(t, lazySink{}, 3)
	_, err := f.cycle.Run(context.Background(), testInv)
	var ce *poll.CycleError
	require.ErrorAs(t, err, &ce)
	assert.EqualValues(t, "unreported", ce.Reason)
	assert.Equal(t, int64(1), f.store.cursors[f.cycle.Conn])
}

// lateSink reports item 0 during Send and item 1 after Send returned, the
// way an acknowledgement racing a lost connection could.
type lateSink struct{ after, late chan bool }

func (l lateSink) Send(_ context.Context, evs []poll.Event, report func(int, error) bool) {
	report(0, nil)
	go func() { <-l.after; l.late <- report(1, nil) }()
}
func (lateSink) Close() error { return nil }

func TestCycleIgnoresReportsAfterSendReturned(t *testing.T) {
	after, late := make(chan bool), make(chan bool)
	f := newFixture(t, lateSink{after: after, late: late}, 3)
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.Error(t, err, "items 2 and 3 were not reported in time")
	close(after) // the cycle is over: now the late report comes
	assert.False(t, <-late, "a late report asks for no more")
	assert.Equal(t, int64(1), sum.Cursor)
	assert.Equal(t, int64(1), f.store.cursors[f.cycle.Conn], "the late report did not move the persisted cursor past the summary's")
	assert.Equal(t, []int64{1}, f.store.saves)
}

func TestCycleLeaseHeld(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 3)
	_, err := f.store.Acquire(context.Background(), f.cycle.Conn, "other")
	require.NoError(t, err)
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.True(t, sum.LeaseHeld)
	assert.Empty(t, f.api.Requests(), "no poll without the lease")
	assert.Empty(t, sink.ids())
}

func TestCyclePollFailureLeavesCursor(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 150)
	f.store.cursors[f.cycle.Conn] = 20
	f.api.Fail(ilerttest.Fault{}, ilerttest.Fault{Body: []byte(`{"items":[{"id":"x"}]}`)})
	sum, err := f.cycle.Run(context.Background(), testInv)
	var ce *poll.CycleError
	require.ErrorAs(t, err, &ce)
	assert.EqualValues(t, "poll", ce.Kind)
	assert.Equal(t, seq(21, 120), sink.ids(), "first batch delivered before the second poll failed")
	assert.Equal(t, int64(120), sum.Cursor)

	f.api.Fail(ilerttest.Fault{Status: 401})
	_, err = f.cycle.Run(context.Background(), testInv)
	require.ErrorAs(t, err, &ce)
	assert.EqualValues(t, "auth", ce.Kind)
	assert.ErrorIs(t, err, poll.ErrAuth)
	assert.Equal(t, int64(120), f.store.cursors[f.cycle.Conn])
}

func TestCycleSaveFailureStops(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 10)
	f.store.failAt = 4
	_, err := f.cycle.Run(context.Background(), testInv)
	var ce *poll.CycleError
	require.ErrorAs(t, err, &ce)
	assert.EqualValues(t, "state", ce.Kind)
	assert.Equal(t, seq(1, 4), sink.ids(), "no delivery after a failed save")
	assert.Equal(t, int64(3), f.store.cursors[f.cycle.Conn])
}

func TestCycleSoftStopFinishesItemInFlight(t *testing.T) {
	soft, stop := context.WithCancel(context.Background())
	sink := &scriptedSink{}
	sink.onDeliver = func(ev poll.Event) {
		if ev.ID == 5 {
			stop()
		}
	}
	f := newFixture(t, poll.OneByOne(sink), 50)
	sum, err := f.cycle.RunUntil(soft, context.Background(), testInv)
	require.NoError(t, err)
	assert.True(t, sum.Stopped)
	assert.Equal(t, seq(1, 5), sink.ids(), "item 5 in flight finished, nothing new started")
	assert.Equal(t, int64(5), f.store.cursors[f.cycle.Conn])
	assert.Empty(t, f.store.held)
}

func TestCycleSkipsItemsAtOrBelowCursor(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 0)
	f.store.cursors[f.cycle.Conn] = 5
	for _, id := range []int64{4, 5, 6, 7} {
		f.api.PushItems(testKey, ilerttest.Item{ID: id, Payload: []byte(`{"id":"` + strconv.FormatInt(id, 10) + `"}`)})
	}
	// The fake honours after-id; force a replay with a raw fault body.
	f.api.Fail(ilerttest.Fault{Body: []byte(`{"items":[{"id":4,"payload":{}},{"id":5,"payload":{}},{"id":6,"payload":{}}]}`)})
	_, err := f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, []int64{6}, sink.ids())
}

func TestCycleHA(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 5)
	f.cycle.HA = &poll.HA{ClusterID: "prod", InstanceID: "node-1"}
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, "leader", sum.Role)
	assert.Equal(t, seq(1, 5), sink.ids())

	other := &scriptedSink{}
	standby := &poll.Cycle{Client: f.cycle.Client, Sink: poll.OneByOne(other), Store: newMemStore(),
		Conn: f.cycle.Conn, HA: &poll.HA{ClusterID: "prod", InstanceID: "node-2"}}
	sum, err = standby.Run(context.Background(), poll.Invocation{Owner: "standby"})
	require.NoError(t, err)
	assert.Equal(t, "standby", sum.Role)
	assert.Empty(t, other.ids())

	f.api.Push(testKey, ilerttest.AlertEvents(2)...)
	_, err = f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, seq(1, 7), sink.ids())
	reqs := f.api.Requests()
	last := reqs[len(reqs)-1].Query
	assert.Equal(t, "5", last["last-processed-id"])
	assert.NotContains(t, last, "after-id")
}

// HA progress is per instance (16.3): last-processed-id names only what
// this instance delivered: never the connection's non-HA cursor, never
// another instance's progress (a new instance sends none in its first
// poll); a fresh Cycle of the same instance (the next one-shot run)
// acknowledges its last batch in its first poll.
func TestCycleHAProgressPerInstance(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 3)
	_, err := f.cycle.Run(context.Background(), testInv) // non-HA: cursor 3
	require.NoError(t, err)
	f.api.Push(testKey, ilerttest.AlertEvents(2)...)
	lastQuery := func() map[string]string { r := f.api.Requests(); return r[len(r)-1].Query }
	instance := func(id string) *poll.Cycle {
		return &poll.Cycle{Client: f.cycle.Client, Sink: poll.OneByOne(sink), Store: f.store, Conn: f.cycle.Conn,
			HA: &poll.HA{ClusterID: "prod", InstanceID: id}}
	}
	n := len(f.api.Requests())
	_, err = instance("node-1").Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.NotContains(t, f.api.Requests()[n].Query, "last-processed-id", "a new instance acknowledges nothing: not the non-HA cursor")
	assert.Equal(t, append(seq(1, 3), seq(1, 5)...), sink.ids(), "the HA cluster's server cursor starts at 0 in the fake")

	_, err = instance("node-1").Run(context.Background(), testInv) // the next one-shot run of node-1
	require.NoError(t, err)
	assert.Equal(t, "5", lastQuery()["last-processed-id"], "its last batch is acknowledged")
	assert.Len(t, sink.ids(), 8, "and not delivered again")

	f.api.SetLeaderTTL(0) // node-2 takes over at once
	_, err = instance("node-2").Run(context.Background(), poll.Invocation{Owner: "other"})
	require.NoError(t, err)
	assert.NotContains(t, lastQuery(), "last-processed-id", "never another instance's progress")

	assert.Equal(t, int64(3), f.store.cursors[f.cycle.Conn], "the non-HA cursor is untouched by HA runs")
}

func TestEventMetadataLenient(t *testing.T) {
	cases := map[string][3]string{
		`{"eventType":"alert-resolved","id":"42","timestamp":"t"}`:   {"alert-resolved", "42", "t"},
		`{"eventType":7,"id":12345678901234567890,"timestamp":null}`: {"7", "12345678901234567890", ""},
		`{"eventType":{"x":1},"id":[1],"timestamp":true}`:            {"", "", ""},
		`{"eventType":"a\r\nX-Evil: 1"}`:                             {"aX-Evil: 1", "", ""},
		`{}`:                                                         {"", "", ""},
	}
	for in, want := range cases {
		ev := poll.NewEvent(1, []byte(in))
		assert.Equal(t, want, [3]string{ev.EventType, ev.AlertID, ev.Timestamp}, in)
	}
}

// The next page is prefetched while a full batch is delivered; a failure in
// the batch discards the prefetched page, so nothing is skipped.
func TestCyclePrefetchDiscardedOnFailure(t *testing.T) {
	sink := &scriptedSink{fail: map[int64]error{150: poll.Retryable("http_503", errors.New("503"))}}
	f := newFixture(t, poll.OneByOne(sink), 350)
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.Error(t, err)
	assert.Equal(t, seq(1, 149), sink.ids())
	assert.Equal(t, int64(149), sum.Cursor)
	delete(sink.fail, 150)
	_, err = f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, seq(1, 350), sink.ids(), "resumed at 150, nothing skipped, nothing twice")
}

// With HA, last-processed-id acknowledges items: never poll ahead.
func TestCycleHANeverPrefetches(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 250)
	f.cycle.HA = &poll.HA{ClusterID: "c", InstanceID: "i"}
	sum, err := f.cycle.Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, seq(1, 250), sink.ids())
	reqs := f.api.Requests()
	assert.Len(t, reqs, sum.Polls, "no speculative polls")
	assert.Equal(t, []string{"", "100", "200"}, []string{reqs[0].Query["last-processed-id"], reqs[1].Query["last-processed-id"], reqs[2].Query["last-processed-id"]})
}

// An unusable item in an otherwise good page: the items before it are
// delivered, the cycle fails naming its position, and the cursor stays
// right before it (every later cycle stops at the same place).
func TestCycleDeliversItemsBeforeAnUnusableOne(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 0)
	f.store.cursors[f.cycle.Conn] = 10
	page := []byte(`{"items":[{"id":11,"payload":{}},{"id":12,"payload":{}},{"id":"three","payload":{}},{"id":14,"payload":{}}]}`)
	for run := 0; run < 2; run++ {
		f.api.Fail(ilerttest.Fault{Body: page})
		sum, err := f.cycle.Run(context.Background(), testInv)
		var ce *poll.CycleError
		require.ErrorAs(t, err, &ce)
		assert.EqualValues(t, "poll", ce.Kind)
		assert.EqualValues(t, "bad_item", ce.Reason)
		assert.Contains(t, err.Error(), "items[2] (the item after id 12) is unusable: \"id\" is not an integer")
		assert.Equal(t, int64(12), sum.Cursor)
		assert.Equal(t, int64(12), f.store.cursors[f.cycle.Conn])
	}
	assert.Equal(t, []int64{11, 12}, sink.ids(), "delivered once; nothing after the bad item")
}

// pollResults records the results of the polls the cycle reports.
type pollResults struct{ results []string }

func (o *pollResults) Polled(result string, _ int, _ time.Duration) {
	o.results = append(o.results, result)
}
func (o *pollResults) Item(poll.Outcome, string, time.Duration) {}
func (o *pollResults) Cursor(int64)                             {}
func (o *pollResults) Role(string)                              {}
func (o *pollResults) DeadLettered()                            {}

// With HA, a one-shot run (Invocation.FinalAck) acknowledges its last
// items with a final poll (limit 1, last-processed-id, nothing delivered
// from its answer), so the next run of a new instance (a random
// --instance-id every run) is not handed them again. A failed final poll
// is a WARN and a counted poll, not the cycle's error. A daemon's cycle
// (no FinalAck) and a run that handled nothing new make no final poll.
func TestCycleHAFinalAck(t *testing.T) {
	sink := &scriptedSink{}
	f := newFixture(t, poll.OneByOne(sink), 5)
	f.api.SetLeaderTTL(0) // every new instance takes over at once
	obs := &pollResults{}
	instance := func(id string) *poll.Cycle {
		return &poll.Cycle{Client: f.cycle.Client, Sink: poll.OneByOne(sink), Store: f.store, Conn: f.cycle.Conn,
			HA: &poll.HA{ClusterID: "prod", InstanceID: id}, Observer: obs}
	}
	var logs bytes.Buffer
	oneShot := poll.Invocation{Owner: "test", FinalAck: true, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	run := func(id string, inv poll.Invocation) (poll.Summary, []ilerttest.Request) {
		n := len(f.api.Requests())
		sum, err := instance(id).Run(context.Background(), inv)
		require.NoError(t, err)
		return sum, f.api.Requests()[n:]
	}

	sum, reqs := run("run-1", oneShot)
	assert.Equal(t, seq(1, 5), sink.ids())
	require.Len(t, reqs, 2, "the poll, then the final poll")
	assert.Equal(t, map[string]string{"limit": "1", "cluster-id": "prod", "instance-id": "run-1", "last-processed-id": "5"}, reqs[1].Query)
	assert.Equal(t, 2, sum.Polls)
	assert.Equal(t, 5, sum.Delivered, "nothing from the final poll's answer")

	f.api.Push(testKey, ilerttest.AlertEvents(2)...)
	_, reqs = run("run-2", oneShot)
	assert.NotContains(t, reqs[0].Query, "last-processed-id", "a new instance")
	assert.Equal(t, seq(1, 7), sink.ids(), "the next run, a new instance, delivers only what is new")
	require.Len(t, reqs, 2)
	assert.Equal(t, "7", reqs[1].Query["last-processed-id"])

	_, reqs = run("run-3", oneShot)
	assert.Len(t, reqs, 1, "nothing handled: no final poll")
	f.api.Fail(ilerttest.Fault{Status: http.StatusServiceUnavailable})
	n := len(f.api.Requests())
	_, err := instance("run-2").Run(context.Background(), oneShot)
	require.Error(t, err)
	assert.Len(t, f.api.Requests()[n:], 1, "a run that handled nothing (its poll failed) makes no final poll for its stored progress")

	f.api.Push(testKey, ilerttest.AlertEvents(1)...)
	f.api.Fail(ilerttest.Fault{}, ilerttest.Fault{Status: http.StatusServiceUnavailable})
	obs.results = nil
	sum, reqs = run("run-4", oneShot)
	assert.Equal(t, seq(1, 8), sink.ids())
	assert.Len(t, reqs, 2)
	assert.Equal(t, []string{"ok", "status_503"}, obs.results, "the failed final poll is counted")
	assert.Equal(t, 2, sum.Polls)
	assert.Contains(t, logs.String(), `level=WARN msg="the final poll acknowledging this run's last items failed`)
	assert.Contains(t, logs.String(), "last_processed_id=8")

	_, reqs = run("daemon", poll.Invocation{Owner: "daemon"})
	assert.Equal(t, append(seq(1, 8), 8), sink.ids(), "the unacknowledged item is handed to the next instance")
	assert.Len(t, reqs, 1, "a daemon's next cycle acknowledges: no final poll")
}
