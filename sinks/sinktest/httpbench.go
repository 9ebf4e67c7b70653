package sinktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// HTTPTarget starts a loopback HTTP endpoint that reads every request body
// and answers 204; it is closed at the end of the test.
func HTTPTarget(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// PlainPost returns a plain net/http client's POST of one body to url,
// over a kept-alive connection: the delivery half of the HTTP baselines
// (PlainHTTPLoop alone, or per page of PlainDrain).
func PlainPost(tb testing.TB, url string) func(body json.RawMessage) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	tb.Cleanup(client.CloseIdleConnections)
	return func(body json.RawMessage) {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// PlainHTTPLoop is the POST-only HTTP baseline: PlainPost of each payload
// to url, one at a time, no polling. Each call of the returned function
// posts all payloads and returns how long that took.
func PlainHTTPLoop(tb testing.TB, url string, payloads []json.RawMessage) func() time.Duration {
	post := PlainPost(tb, url)
	return func() time.Duration {
		start := time.Now()
		for _, p := range payloads {
			post(p)
		}
		return time.Since(start)
	}
}

// Paired runs baseline and edgepoll once per benchmark iteration, in
// alternating order (drift on a shared machine hits both alike), each
// handling n items and returning its duration, and reports both rates and
// their ratio (edgepoll / baseline). Each reference is timed too, after
// both, and reported as its rate ("<name>-items/s") and edgepoll's ratio to
// it ("ratio-vs-<name>"): secondary figures of the same run.
func Paired(b *testing.B, n int, baseline, edgepoll func(i int) time.Duration, refs ...Reference) {
	b.Helper()
	var tBase, tEdge time.Duration
	tRef := make([]time.Duration, len(refs))
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			tBase += baseline(i)
			tEdge += edgepoll(i)
		} else {
			tEdge += edgepoll(i)
			tBase += baseline(i)
		}
		for j, r := range refs {
			tRef[j] += r.Run(i)
		}
	}
	items := float64(b.N * n)
	b.ReportMetric(items/tBase.Seconds(), "baseline-items/s")
	b.ReportMetric(items/tEdge.Seconds(), "edgepoll-items/s")
	b.ReportMetric(tBase.Seconds()/tEdge.Seconds(), "ratio")
	for j, r := range refs {
		b.ReportMetric(items/tRef[j].Seconds(), r.Name+"-items/s")
		b.ReportMetric(tRef[j].Seconds()/tEdge.Seconds(), "ratio-vs-"+r.Name)
	}
	b.ReportMetric(0, "ns/op")
}

// Reference is a secondary figure of a Paired benchmark: Run handles the
// same n items and returns its duration.
type Reference struct {
	Name string
	Run  func(i int) time.Duration
}

// PlainItem is an edge item as a bare poller decodes it.
type PlainItem struct {
	ID      int64           `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// PlainDrain is the baseline of the cycle benchmarks (see CycleDrain): a
// bare loop with no state, doing the client-side work a minimal program
// does against its own fake ilert API holding the same payloads. Each
// call of the returned function pushes payloads (at most
// poll.MaxPollsPerCycle × poll.BatchLimit) and times draining them: GET a
// page of poll.BatchLimit items after the last id seen, decode it, hand it
// to deliver (which returns once the page was delivered), and poll again
// while pages are full, at most poll.MaxPollsPerCycle times, as a cycle
// does.
func PlainDrain(b *testing.B, payloads []json.RawMessage, deliver func(page []PlainItem)) func(int) time.Duration {
	key := "iec1-plain"
	api := ilerttest.New(key)
	srv := api.Start()
	b.Cleanup(srv.Close)
	client := &http.Client{}
	b.Cleanup(client.CloseIdleConnections)
	var after int64
	return func(int) time.Duration {
		api.Push(key, payloads...)
		start := time.Now()
		got := 0
		for polls := 0; polls < poll.MaxPollsPerCycle; polls++ {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/edge-connections/events?limit=%d&after-id=%d", srv.URL, poll.BatchLimit, after), nil)
			req.Header.Set("Authorization", key)
			req.Header.Set("Accept", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var page struct {
				Items []PlainItem `json:"items"`
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("poll: %s, %v", resp.Status, err)
			}
			if len(page.Items) > 0 {
				deliver(page.Items)
				after = page.Items[len(page.Items)-1].ID
				got += len(page.Items)
			}
			if len(page.Items) < poll.BatchLimit {
				break
			}
		}
		d := time.Since(start)
		if got != len(payloads) {
			b.Fatalf("plain drain got %d of %d items", got, len(payloads))
		}
		return d
	}
}

// CycleDrain returns a function that pushes payloads (at most
// poll.MaxPollsPerCycle × poll.BatchLimit) to a fresh fake ilert API queue
// and times one whole cycle delivering them through s with store: the
// lease, the polls, the deliveries, every cursor save and the release.
// A nil store is SQLite.
func CycleDrain(b *testing.B, s poll.Sink, store poll.Store, payloads []json.RawMessage) func(int) time.Duration {
	var stores []poll.Store
	if store != nil {
		stores = append(stores, store)
	}
	cycle, api := Cycle(b, s, 0, stores...)
	key := "iec1-sinktest"
	return func(int) time.Duration {
		api.Push(key, payloads...)
		start := time.Now()
		sum, err := cycle.Run(context.Background(), Invocation)
		d := time.Since(start)
		if err != nil || sum.Delivered != len(payloads) {
			b.Fatalf("cycle delivered %d of %d: %v", sum.Delivered, len(payloads), err)
		}
		return d
	}
}

// Payloads are the payloads of evs.
func Payloads(evs []poll.Event) []json.RawMessage {
	out := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		out[i] = ev.Payload
	}
	return out
}

// Discard is a sink that sends nothing and reports every item delivered:
// what a cycle costs without its target.
type Discard struct{}

// Send implements poll.Sink.
func (Discard) Send(_ context.Context, evs []poll.Event, report func(int, error) bool) {
	for i := range evs {
		if !report(i, nil) {
			return
		}
	}
}

// Close implements poll.Sink.
func (Discard) Close() error { return nil }
