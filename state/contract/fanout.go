package contract

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// collector is a Deliverer that records the ids it was given.
type collector struct {
	mu  sync.Mutex
	ids []int64
}

func (c *collector) Deliver(_ context.Context, ev poll.Event) error {
	c.mu.Lock()
	c.ids = append(c.ids, ev.ID)
	c.mu.Unlock()
	return nil
}

func (c *collector) Close() error { return nil }

func (c *collector) got() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids)
}

// sharerCycleContract runs real cycles (fake ilert API on 127.0.0.1) of
// connections sharing one connector key through the backend at loc: one
// without a cursor of its own starts from the furthest cursor stored for
// the key (plain or another sharer's), read while the plain lease is held
// elsewhere, and keeps it as its own at once, so a later cycle misses
// nothing that its siblings delivered meanwhile.
func sharerCycleContract(t *testing.T, loc string, open func(*testing.T, string) poll.Store,
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
	s := open(t, loc)
	plain := acquire(t, open(t, loc), connA, "pre-fan-out-run") // held throughout
	defer plain.Release(ctx)
	if err := plain.Save(ctx, poll.Position{Cursor: 3}); err != nil {
		t.Fatal(err)
	}
	dash := acquire(t, s, poll.CursorID(keyA, "dash"), "dash")
	if err := dash.Save(ctx, poll.Position{Cursor: 4}); err != nil {
		t.Fatal(err)
	}
	_ = dash.Release(ctx)

	sharer := func(name string, siblings ...string) (*poll.Cycle, *collector) {
		c := &collector{}
		inherit := []string{connA}
		for _, sib := range siblings {
			inherit = append(inherit, poll.CursorID(keyA, sib))
		}
		return &poll.Cycle{Client: client, Store: s, Sink: poll.OneByOne(c), Conn: poll.CursorID(keyA, name), Inherit: inherit}, c
	}
	run := func(c *poll.Cycle) poll.Summary {
		t.Helper()
		sum, err := c.Run(ctx, poll.Invocation{Owner: "contract"})
		if err != nil {
			t.Fatalf("cycle of %s: %v", c.Conn, err)
		}
		return sum
	}
	cursor := func(conn string) int64 {
		t.Helper()
		info, err := s.(poll.Inspector).Inspect(ctx, conn)
		if err != nil || !info.HasCursor {
			t.Fatalf("Inspect(%s) = %+v, %v", conn, info, err)
		}
		return info.Cursor
	}

	tickets, tc := sharer("tickets", "dash")
	run(tickets)
	if got := tc.got(); !slices.Equal(got, []int64{5}) {
		t.Fatalf("a new sharer delivered %v; want [5] (from the furthest cursor of the key, 4)", got)
	}
	late, lc := sharer("late", "dash", "tickets")
	api.Push(keyA, ilerttest.AlertEvents(0)...)
	if sum := run(late); sum.Delivered != 0 || cursor(late.Conn) != 5 {
		t.Fatalf("a sharer added later: %+v, cursor %d; want nothing replayed and the cursor 5 kept as its own", sum, cursor(late.Conn))
	}
	api.Push(keyA, ilerttest.AlertEvents(1)...) // id 6
	run(tickets)
	run(late) // tickets is at 6 now: late must not start from there again
	if got := lc.got(); !slices.Equal(got, []int64{6}) {
		t.Fatalf("the later sharer delivered %v; want [6]", got)
	}
	if cursor(connA) != 3 {
		t.Fatalf("the key's plain cursor moved to %d; the sharers keep their own", cursor(connA))
	}
}
