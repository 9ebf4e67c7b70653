package poll_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// sharers are n cycles of connections on one key (fan-out) sharing polls,
// on one store; the fake API's requests count the polls that reached ilert.
func sharers(t *testing.T, n, items int) (*ilerttest.API, *memStore, *poll.SharedPolls, []*poll.Cycle, []*scriptedSink) {
	t.Helper()
	api := ilerttest.New(testKey)
	api.Push(testKey, ilerttest.AlertEvents(items)...)
	srv := api.Start()
	t.Cleanup(srv.Close)
	store := newMemStore()
	fan := &poll.FanOut{Plain: poll.ConnectionID(testKey), Polls: poll.SharedPolls{Sharers: n, Fresh: time.Minute}} // no expiry during the test
	for i := 0; i < n; i++ {
		fan.Members = append(fan.Members, poll.CursorID(testKey, string(rune('a'+i))))
	}
	var cycles []*poll.Cycle
	var sinks []*scriptedSink
	for i := 0; i < n; i++ {
		s := &scriptedSink{}
		sinks = append(sinks, s)
		cycles = append(cycles, &poll.Cycle{Client: newClient(t, srv.URL), Sink: poll.OneByOne(s), Store: store,
			Conn: fan.Members[i], FanOut: fan})
	}
	return api, store, &fan.Polls, cycles, sinks
}

func runAll(cycles []*poll.Cycle) []poll.FleetResult {
	ms := make([]poll.FleetMember, len(cycles))
	for i, c := range cycles {
		ms[i] = poll.FleetMember{Name: c.Conn, Cycle: c, Invocation: testInv}
	}
	return poll.RunFleetOnce(context.Background(), context.Background(), ms, len(ms), nil)
}

func TestSharedPollsOnePollPerPageForAllSharers(t *testing.T) {
	api, store, shared, cycles, sinks := sharers(t, 3, 250)
	// b's target was ahead at 100: its first poll is the others' second.
	store.cursors[cycles[0].Conn], store.cursors[cycles[1].Conn], store.cursors[cycles[2].Conn] = 0, 100, 0
	for i, r := range runAll(cycles) {
		require.NoError(t, r.Err, r.Name)
		from := int64(1)
		if i == 1 {
			from = 101
		}
		assert.Equal(t, seq(from, 250), sinks[i].ids(), r.Name)
	}
	assert.Len(t, api.Requests(), 3, "after-id 0, 100, 200: one poll each for all three connections")
	assert.Equal(t, 3, shared.Asked())
}

func TestSharedPollsNotSharedWhenCursorsDiffer(t *testing.T) {
	api, store, _, cycles, sinks := sharers(t, 2, 30)
	store.cursors[cycles[0].Conn], store.cursors[cycles[1].Conn] = 0, 10
	for _, r := range runAll(cycles) {
		require.NoError(t, r.Err, r.Name)
	}
	assert.Equal(t, seq(1, 30), sinks[0].ids())
	assert.Equal(t, seq(11, 30), sinks[1].ids())
	assert.Len(t, api.Requests(), 2, "after-id 0 and after-id 10")
}

func TestSharedPollsFailureIsNotShared(t *testing.T) {
	api, _, _, cycles, sinks := sharers(t, 2, 5)
	// The first poll fails, slowly: the other connection asks meanwhile,
	// waits for it, then polls on its own.
	api.Fail(ilerttest.Fault{Status: 503, Delay: 200 * time.Millisecond})
	failed := 0
	for i, r := range runAll(cycles) {
		if r.Err != nil {
			failed++
			assert.Empty(t, sinks[i].ids())
			continue
		}
		assert.Equal(t, seq(1, 5), sinks[i].ids(), r.Name)
	}
	assert.Equal(t, 1, failed, "only the connection whose poll failed fails")
	// The next cycle of the failed one polls anew (nothing cached).
	for i, c := range cycles {
		if len(sinks[i].ids()) == 0 {
			_, err := c.Run(context.Background(), testInv)
			require.NoError(t, err)
			assert.Equal(t, seq(1, 5), sinks[i].ids())
		}
	}
}

func TestSharedPollsFreshness(t *testing.T) {
	api, _, shared, cycles, sinks := sharers(t, 2, 150)
	shared.Fresh = 50 * time.Millisecond
	_, err := cycles[0].Run(context.Background(), testInv) // after-id 0 (full), 100 (50 items)
	require.NoError(t, err)
	api.Push(testKey, ilerttest.AlertEvents(1)...) // 151
	time.Sleep(100 * time.Millisecond)             // past Fresh, well within FullPageFresh
	_, err = cycles[1].Run(context.Background(), testInv)
	require.NoError(t, err)
	assert.Equal(t, seq(1, 150), sinks[0].ids())
	assert.Equal(t, seq(1, 151), sinks[1].ids(), "the partial page expired: polled anew, the new item seen")
	var after []string
	for _, r := range api.Requests() {
		after = append(after, r.Query["after-id"])
	}
	assert.Equal(t, []string{"0", "100", "100"}, after, "the full page is shared past Fresh (its items are fixed)")
}

// Inspect makes memStore a poll.Inspector (the fan-out start reads the
// cursors of the key without their leases).
func (s *memStore) Inspect(_ context.Context, conn string) (poll.StateInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cursors[conn]
	_, held := s.held[conn]
	return poll.StateInfo{HasCursor: ok, Cursor: c, Lease: poll.LeaseInfo{Held: held}}, nil
}

// TestFanOutStartConcurrent: the first member's cycle fixes the start and
// seeds its siblings through their leases; their first cycles, started
// while it does, wait for it: none finds its lease held, each starts from
// the key's plain cursor and delivers everything after it.
func TestFanOutStartConcurrent(t *testing.T) {
	_, store, _, cycles, sinks := sharers(t, 4, 120)
	fan := cycles[0].FanOut
	store.cursors[fan.Plain] = 50
	seeding := make(chan struct{})
	var once sync.Once
	store.onAcquire = func(conn string) {
		if conn == cycles[1].Conn {
			once.Do(func() {
				close(seeding) // the seeding holds member 1's lease
				time.Sleep(50 * time.Millisecond)
			})
		}
	}
	first := make(chan poll.FleetResult)
	go func() { first <- runAll(cycles[:1])[0] }()
	<-seeding
	results := append(runAll(cycles[1:]), <-first)
	sinks = append(sinks[1:], sinks[0])
	for i, r := range results {
		require.NoError(t, r.Err, r.Name)
		assert.False(t, r.Summary.LeaseHeld, r.Name)
		assert.Equal(t, seq(51, 120), sinks[i].ids(), r.Name)
	}
	assert.Equal(t, int64(50), store.cursors[fan.Plain], "the plain cursor is left as it was")
}

// A store that lets an owner take its own lease again (DynamoDB: a run
// re-taking its lease) must not let the sibling that seeds the others'
// start take the lease of a sibling whose cycle of this process holds it
// (the same owner: the run's or the invocation's id), which would make that
// cycle's saves fail ("a newer lease owns the cursor"). The seeding takes
// leases under an owner of its own, finds this one held, and the sibling
// takes its start at its own first cycle.
func TestFanOutSeedingNeverTakesASiblingsLease(t *testing.T) {
	ctx := context.Background()
	_, store, _, cycles, sinks := sharers(t, 2, 10)
	store.sameOwnerTakesOver = true
	held, err := store.Acquire(ctx, cycles[1].Conn, testInv.Owner) // member 1's cycle, in flight
	require.NoError(t, err)
	res := runAll(cycles[:1]) // member 0 fixes the start and seeds the others
	require.NoError(t, res[0].Err)
	assert.Equal(t, seq(1, 10), sinks[0].ids())
	require.NoError(t, held.Save(ctx, poll.Position{Cursor: 3}), "member 1's lease is still its own")
	require.NoError(t, held.Release(ctx))
	res = runAll(cycles[1:])
	require.NoError(t, res[0].Err)
	assert.Equal(t, seq(4, 10), sinks[1].ids())
}

// TestSharedPollsNotHeldForAConnectionThatDoesNotCome: a page is dropped
// once every connection took it, or when it is no longer fresh when one
// does not come (its target is behind): its payloads are not held on.
func TestSharedPollsNotHeldForAConnectionThatDoesNotCome(t *testing.T) {
	_, store, shared, cycles, _ := sharers(t, 3, 5)
	for _, c := range cycles {
		store.cursors[c.Conn] = 0
	}
	runAll(cycles)
	assert.Equal(t, 0, shared.Held(), "all three took it")

	_, store, shared, cycles, _ = sharers(t, 3, 5)
	shared.Fresh = 20 * time.Millisecond
	for _, c := range cycles {
		store.cursors[c.Conn] = 0
	}
	store.cursors[cycles[2].Conn] = 3 // its cursor differs: it never asks for after-id 0
	runAll(cycles[:2])                // the page is kept for the third while fresh (not asserted: a timing)
	require.Eventually(t, func() bool { return shared.Held() == 0 }, 5*time.Second, 5*time.Millisecond, "dropped once stale")
}
