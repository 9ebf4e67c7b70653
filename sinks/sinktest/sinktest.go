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

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
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

// Cycle builds a real cycle around s: a fake ilert API holding n alert
// events, the ilert client, and a SQLite store in a temp dir.
func Cycle(t testing.TB, s poll.Sink, n int) (*poll.Cycle, *ilerttest.API) {
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
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return &poll.Cycle{Client: client, Sink: s, Store: store, Conn: poll.ConnectionID(key), Owner: "sinktest"}, api
}
