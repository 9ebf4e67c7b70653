// Package sinktest has helpers for testing poll.Sink implementations:
// realistic events, collecting per-item reports (failing on a double
// report), and a benchmark loop.
package sinktest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/state/dynamo"
	"github.com/edgepoll/edgepoll/state/sqlite"
)

// Events returns n realistic alert events with item ids 1..n.
func Events(n int) []poll.Event {
	payloads := ilerttest.AlertEvents(n)
	evs := make([]poll.Event, n)
	for i, p := range payloads {
		evs[i] = poll.NewEvent(int64(i+1), p)
	}
	return evs
}

// Sized returns n events of about size bytes, alert ids cycling over keys.
func Sized(n, size, keys int) []poll.Event {
	pad := strings.Repeat("x", max(0, size-80))
	evs := make([]poll.Event, n)
	for i := range evs {
		evs[i] = poll.NewEvent(int64(i+1), []byte(fmt.Sprintf(`{"id":"%d","eventType":"alert-created","summary":"%s"}`, i%keys, pad)))
	}
	return evs
}

// Send runs s.Send over evs and returns every item's reported result; an
// item reported twice fails t.
func Send(t testing.TB, s poll.Sink, evs []poll.Event) map[int]error {
	t.Helper()
	var mu sync.Mutex
	errs := map[int]error{}
	var twice []int
	s.Send(context.Background(), evs, func(i int, err error) bool {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := errs[i]; dup {
			twice = append(twice, i)
		}
		errs[i] = err
		return true
	})
	if len(twice) > 0 {
		t.Fatalf("items reported twice: %v", twice)
	}
	return errs
}

// Bench sends evs b.N times, requiring every item delivered, and reports
// items/s.
func Bench(b *testing.B, s poll.Sink, evs []poll.Event) {
	b.Helper()
	for i := 0; i < b.N; i++ {
		for j, err := range Send(b, s, evs) {
			if err != nil {
				b.Fatalf("item %d: %v", j, err)
			}
		}
	}
	ItemsPerSecond(b, len(evs))
}

// ItemsPerSecond reports the items/s metric of a benchmark that handled n
// items per iteration.
func ItemsPerSecond(b *testing.B, n int) {
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "items/s")
}

// Invocation is what the tests pass to the cycles Cycle builds.
var Invocation = poll.Invocation{Owner: "sinktest"}

// Cycle builds a real cycle around s: a fake ilert API holding n alert
// events, the ilert client, and a store: SQLite in a temp dir unless store
// is given (see Dynamo).
func Cycle(t testing.TB, s poll.Sink, n int, store ...poll.Store) (*poll.Cycle, *ilerttest.API) {
	t.Helper()
	key := "iec1-sinktest"
	api := ilerttest.New(key)
	api.Push(key, ilerttest.AlertEvents(n)...)
	srv := api.Start()
	t.Cleanup(srv.Close)
	client, err := poll.NewClient(poll.ClientConfig{BaseURL: srv.URL, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var st poll.Store
	if len(store) > 0 {
		st = store[0]
	} else {
		st, err = sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
	}
	return &poll.Cycle{Client: client, Sink: s, Store: st, Conn: poll.ConnectionID(key)}, api
}

// Dynamo returns a DynamoDB store on a fresh table of its own dynalite
// (failing or skipping per testenv when dynalite is not installed).
func Dynamo(t testing.TB) poll.Store {
	t.Helper()
	srv := dynalitetest.Start(t)
	srv.CreateTable(t, "edgepoll-sinktest")
	st, err := dynamo.Open(context.Background(), "edgepoll-sinktest", dynamo.Options{Client: srv.StoreClient()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// SlowStoreDrain drains n items (n/100 batches) through s in one cycle over
// a store whose every Save is held until the sink has reported every item
// of that Save's batch delivered. It checks that the sink's deliveries never
// wait for a Save (a Save held until its batch was delivered would
// otherwise never be released: after a generous deadlock guard the test
// fails), and that the store costs each batch one more Save once its items
// were delivered, in order: at most two Saves per batch, never backwards,
// the last one at the batch's end.
func SlowStoreDrain(t *testing.T, s poll.Sink, n int) {
	h := &heldSaves{n: int64(n)}
	h.cond.L = &h.mu
	cycle, _ := Cycle(t, countingSink{Sink: s, h: h}, n)
	cycle.Store = heldStore{Store: cycle.Store, h: h}
	sum, err := cycle.Run(context.Background(), Invocation)
	if err != nil {
		t.Fatalf("cycle: %v", err)
	}
	if sum.Cursor != int64(n) || sum.Delivered != n {
		t.Fatalf("cycle: cursor %d, delivered %d; want %d", sum.Cursor, sum.Delivered, n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.stuck) > 0 {
		t.Fatalf("Saves of %v were released by the deadlock guard: the sink waited for them", h.stuck)
	}
	perBatch := map[int64][]int64{}
	var prev int64
	for _, c := range h.saves {
		if c <= prev {
			t.Fatalf("Save(%d) after Save(%d): %v", c, prev, h.saves)
		}
		prev = c
		b := batchEnd(c, h.n)
		perBatch[b] = append(perBatch[b], c)
	}
	for b, cs := range perBatch {
		if len(cs) > 2 || cs[len(cs)-1] != b {
			t.Fatalf("batch ending at %d: Saves %v; want at most two, the last at %d", b, cs, b)
		}
	}
	if prev != int64(n) {
		t.Fatalf("last Save %d, want %d", prev, n)
	}
	t.Logf("Saves with every Save held until its batch was delivered: %v", h.saves)
}

func batchEnd(c, n int64) int64 { return min((c+poll.BatchLimit-1)/poll.BatchLimit*poll.BatchLimit, n) }

// heldSaves holds each Save until the items of its batch were reported
// (countingSink tells it once each report returned: the cycle then has
// handed the position past the item to its saver).
type heldSaves struct {
	mu        sync.Mutex
	cond      sync.Cond
	n         int64
	delivered int64
	saves     []int64
	stuck     []int64 // Saves released by the deadlock guard
}

func (h *heldSaves) reported() {
	h.mu.Lock()
	h.delivered++
	h.cond.Broadcast()
	h.mu.Unlock()
}

// countingSink counts every report once it returned.
type countingSink struct {
	poll.Sink
	h *heldSaves
}

func (c countingSink) Send(ctx context.Context, evs []poll.Event, report func(int, error) bool) {
	c.Sink.Send(ctx, evs, func(i int, err error) bool {
		more := report(i, err)
		c.h.reported()
		return more
	})
}

func (h *heldSaves) hold(c int64) {
	guard := time.AfterFunc(30*time.Second, func() {
		h.mu.Lock()
		h.stuck = append(h.stuck, c)
		h.cond.Broadcast()
		h.mu.Unlock()
	})
	defer guard.Stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.saves = append(h.saves, c)
	for h.delivered < batchEnd(c, h.n) && len(h.stuck) == 0 { // once stuck, hold nothing more
		h.cond.Wait()
	}
}

type heldStore struct {
	poll.Store
	h *heldSaves
}

func (s heldStore) Acquire(ctx context.Context, conn, owner string) (poll.Lease, error) {
	l, err := s.Store.Acquire(ctx, conn, owner)
	if err != nil {
		return nil, err
	}
	return heldLease{Lease: l, h: s.h}, nil
}

// heldLease is not a poll.CheapSaver: the cycle saves through it as through
// a remote store.
type heldLease struct {
	poll.Lease
	h *heldSaves
}

func (l heldLease) Save(ctx context.Context, p poll.Position) error {
	l.h.hold(p.Cursor)
	return l.Lease.Save(ctx, p)
}
