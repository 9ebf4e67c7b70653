package poll_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

type fleetFixture struct {
	members []poll.FleetMember
	sinks   []*scriptedSink
	active  atomic.Int32
	maxSeen atomic.Int32
}

// newFleetFixture: n connections of items each, one API, one store.
func newFleetFixture(t *testing.T, n, items int) *fleetFixture {
	api := ilerttest.New()
	srv := api.Start()
	t.Cleanup(srv.Close)
	store := newMemStore()
	f := &fleetFixture{}
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("iec1-fleet-%d", i)
		api.Push(key, ilerttest.AlertEvents(items)...)
		sink := &scriptedSink{}
		sink.onDeliver = func(poll.Event) {
			cur := f.active.Load()
			for {
				m := f.maxSeen.Load()
				if cur <= m || f.maxSeen.CompareAndSwap(m, cur) {
					break
				}
			}
		}
		f.sinks = append(f.sinks, sink)
		client, err := poll.NewClient(poll.ClientConfig{BaseURL: srv.URL, Key: key})
		require.NoError(t, err)
		f.members = append(f.members, poll.FleetMember{
			Name:       fmt.Sprintf("c%d", i),
			Cycle:      &poll.Cycle{Client: client, Sink: poll.OneByOne(sink), Store: store, Conn: poll.ConnectionID(key)},
			Invocation: poll.Invocation{Owner: "test"},
			Open:       func(context.Context) (*poll.Cycle, error) { f.active.Add(1); return nil, nil },
		})
	}
	return f
}

func (f *fleetFixture) done(int, poll.FleetResult) { f.active.Add(-1) }

func TestFleetRunsEveryMemberWithinMaxParallel(t *testing.T) {
	for _, maxParallel := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(maxParallel), func(t *testing.T) {
			f := newFleetFixture(t, 5, 30)
			res := poll.RunFleetOnce(context.Background(), context.Background(), f.members, maxParallel, f.done)
			require.Len(t, res, 5)
			for i, r := range res {
				assert.Equal(t, f.members[i].Name, r.Name, "results in member order")
				assert.NoError(t, r.Err)
				assert.Equal(t, 30, r.Summary.Delivered)
				assert.Equal(t, seq(1, 30), f.sinks[i].ids())
			}
			assert.LessOrEqual(t, int(f.maxSeen.Load()), maxParallel)
			assert.Zero(t, f.active.Load())
		})
	}
}

func TestFleetFailureStaysWithItsMember(t *testing.T) {
	f := newFleetFixture(t, 4, 20)
	f.sinks[1].fail = map[int64]error{1: poll.Retryable("http_503", errors.New("503"))}
	broken := errors.New("no broker")
	f.members[2].Open = func(context.Context) (*poll.Cycle, error) { f.active.Add(1); return nil, broken }
	var mu sync.Mutex
	var doneOrder []string
	res := poll.RunFleetOnce(context.Background(), context.Background(), f.members, 1, func(i int, r poll.FleetResult) {
		f.done(i, r)
		mu.Lock()
		doneOrder = append(doneOrder, r.Name)
		mu.Unlock()
	})
	assert.NoError(t, res[0].Err)
	var ce *poll.CycleError
	require.ErrorAs(t, res[1].Err, &ce)
	assert.EqualValues(t, "delivery", ce.Kind)
	require.ErrorAs(t, res[2].Err, &ce)
	assert.EqualValues(t, "open", ce.Kind)
	assert.ErrorIs(t, res[2].Err, broken)
	assert.NoError(t, res[3].Err)
	assert.Equal(t, seq(1, 20), f.sinks[3].ids(), "a member after the failing ones delivers everything")
	assert.Equal(t, []string{"c0", "c1", "c2", "c3"}, doneOrder)
}

func TestFleetSoftStopStartsNoFurtherMember(t *testing.T) {
	f := newFleetFixture(t, 3, 5)
	soft, cancel := context.WithCancel(context.Background())
	cancel()
	res := poll.RunFleetOnce(soft, context.Background(), f.members, 2, f.done)
	for i, r := range res {
		assert.True(t, r.Summary.Stopped)
		assert.NoError(t, r.Err)
		assert.Empty(t, f.sinks[i].ids())
	}
}

// countingStore counts the leases held at once: one per running cycle.
type countingStore struct {
	poll.Store
	active, max atomic.Int32
}

func (c *countingStore) Acquire(ctx context.Context, conn, owner string) (poll.Lease, error) {
	l, err := c.Store.Acquire(ctx, conn, owner)
	if err != nil {
		return nil, err
	}
	n := c.active.Add(1)
	for m := c.max.Load(); n > m && !c.max.CompareAndSwap(m, n); m = c.max.Load() {
	}
	return countingLease{Lease: l, c: c}, nil
}

type countingLease struct {
	poll.Lease
	c *countingStore
}

func (l countingLease) Release(ctx context.Context) error {
	l.c.active.Add(-1)
	return l.Lease.Release(ctx)
}

// Daemons sharing Slots run at most that many cycles at once, and every
// daemon still gets its turn.
func TestDaemonsShareSlots(t *testing.T) {
	f := newFleetFixture(t, 4, 3)
	store := &countingStore{Store: f.members[0].Cycle.Store}
	slots := poll.NewSlots(2)
	soft, stop := context.WithCancel(context.Background())
	defer stop()
	var cycles atomic.Int32
	var wg sync.WaitGroup
	for _, m := range f.members {
		m.Cycle.Store = store
		d := &poll.Daemon{Cycle: m.Cycle, Invocation: m.Invocation, Interval: time.Millisecond, Slots: slots, OnCycle: func(poll.CycleReport) {
			if cycles.Add(1) >= 40 {
				stop()
			}
		}}
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.Run(soft, context.Background()) }()
	}
	wg.Wait()
	assert.LessOrEqual(t, int(store.max.Load()), 2, "cycles at once")
	assert.Zero(t, len(slots), "every slot given back")
	for i := range f.sinks {
		assert.Equal(t, seq(1, 3), f.sinks[i].ids())
	}
}
