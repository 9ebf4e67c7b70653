package contract

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// collector is a Deliverer that records the ids it was given; while down,
// it fails every delivery (retryable: a target that is down).
type collector struct {
	mu   sync.Mutex
	ids  []int64
	down bool
}

func (c *collector) Deliver(_ context.Context, ev poll.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return poll.Retryable("down", errors.New("connection refused"))
	}
	c.ids = append(c.ids, ev.ID)
	return nil
}

func (c *collector) Close() error { return nil }

func (c *collector) got() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids)
}

// sharerCycleContract runs real cycles (fake ilert API on 127.0.0.1) of
// connections sharing one connector key (poll.FanOut: one per simulated
// process) through the backend:
//   - going from the key's plain cursor (held elsewhere throughout, read
//     without its lease) to several connections, they start from it; one
//     whose lease is held when the first cycle seeds the others gets the
//     same start at its own first cycle, though its siblings moved since;
//   - a connection added later (a new process) starts from the furthest
//     cursor stored for the key, keeps it as its own at once and then
//     misses nothing its siblings delivered meanwhile.
func sharerCycleContract(t *testing.T, fresh func(*testing.T) string, open func(*testing.T, string) poll.Store,
	acquire func(*testing.T, poll.Store, string, string) poll.Lease) {
	ctx := context.Background()
	api := ilerttest.New(keyA)
	srv := api.Start()
	defer srv.Close()
	api.Push(keyA, ilerttest.AlertEvents(5)...) // ids 1..5
	client, err := poll.NewClient(poll.ClientConfig{BaseURL: srv.URL, Key: keyA})
	if err != nil {
		t.Fatal(err)
	}
	loc := fresh(t)
	s := open(t, loc)
	plain := acquire(t, open(t, loc), connA, "pre-fan-out-run")
	defer plain.Release(ctx)
	if err := plain.Save(ctx, poll.Position{Cursor: 2}); err != nil {
		t.Fatal(err)
	}
	process := func(names ...string) *poll.FanOut {
		f := &poll.FanOut{Plain: connA}
		for _, n := range names {
			f.Members = append(f.Members, poll.CursorID(keyA, n))
		}
		// Polls shared only while in flight: this suite pushes items
		// between cycles a few milliseconds apart.
		f.Polls.Sharers, f.Polls.Fresh = len(names), time.Nanosecond
		return f
	}
	got := map[string]*collector{}
	cycle := func(f *poll.FanOut, name string) *poll.Cycle {
		if got[name] == nil {
			got[name] = &collector{}
		}
		return &poll.Cycle{Client: client, Store: s, Sink: poll.OneByOne(got[name]), Conn: poll.CursorID(keyA, name), FanOut: f}
	}
	run := func(c *poll.Cycle) {
		t.Helper()
		if _, err := c.Run(ctx, poll.Invocation{Owner: "contract"}); err != nil {
			t.Fatalf("cycle of %s: %v", c.Conn, err)
		}
	}
	want := func(name string, ids ...int64) {
		t.Helper()
		if g := got[name].got(); !slices.Equal(g, ids) {
			t.Fatalf("%s delivered %v; want %v", name, g, ids)
		}
	}

	p1 := process("tickets", "dash", "audit")
	held := acquire(t, open(t, loc), poll.CursorID(keyA, "audit"), "elsewhere")
	run(cycle(p1, "tickets")) // fixes the start (2), seeds dash; audit is held
	_ = held.Release(ctx)
	run(cycle(p1, "dash"))
	run(cycle(p1, "audit"))
	want("tickets", 3, 4, 5)
	want("dash", 3, 4, 5)
	want("audit", 3, 4, 5)

	api.Push(keyA, ilerttest.AlertEvents(1)...) // 6
	run(cycle(p1, "tickets"))
	p2 := process("tickets", "dash", "audit", "late")
	late := cycle(p2, "late")
	run(late)                                   // starts from 6 (tickets), nothing replayed
	api.Push(keyA, ilerttest.AlertEvents(1)...) // 7
	run(cycle(p2, "tickets"))
	run(late) // tickets is at 7 now: late must not start from there
	want("late", 7)
	want("tickets", 3, 4, 5, 6, 7)
	info, err := s.(poll.Inspector).Inspect(ctx, connA)
	if err != nil || info.Cursor != 2 {
		t.Fatalf("the key's plain cursor: %+v, %v; want 2 (the sharers keep their own)", info, err)
	}
	firstRunDownContract(t, client, api, open(t, fresh(t)))
}

// firstRunDownContract: on a store with no cursor for the key, a member
// whose target is down at its very first cycle still has a cursor of its
// own afterwards (the oldest queued event), so the next process does not
// take it for a connection added since: it gets every item once back.
func firstRunDownContract(t *testing.T, client *poll.Client, api *ilerttest.API, s poll.Store) {
	ctx := context.Background()
	up, down := &collector{}, &collector{down: true}
	process := func() []*poll.Cycle {
		f := &poll.FanOut{Plain: connA, Members: []string{poll.CursorID(keyA, "up"), poll.CursorID(keyA, "down")}}
		f.Polls.Sharers, f.Polls.Fresh = 2, time.Nanosecond
		return []*poll.Cycle{
			{Client: client, Store: s, Sink: poll.OneByOne(up), Conn: f.Members[0], FanOut: f},
			{Client: client, Store: s, Sink: poll.OneByOne(down), Conn: f.Members[1], FanOut: f},
		}
	}
	p1 := process()
	if _, err := p1[0].Run(ctx, poll.Invocation{Owner: "contract"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p1[1].Run(ctx, poll.Invocation{Owner: "contract"}); err == nil {
		t.Fatal("the cycle of the member whose target is down succeeded")
	}
	queued := len(up.got())
	down.mu.Lock()
	down.down = false
	down.mu.Unlock()
	for _, c := range process() {
		if _, err := c.Run(ctx, poll.Invocation{Owner: "contract"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := down.got(); len(got) != queued || queued == 0 || got[0] != 1 {
		t.Fatalf("the member that was down at its first cycle delivered %v once back; want the %d queued items from 1", got, queued)
	}
}
