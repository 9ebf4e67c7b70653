package sinktest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
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

// PlainHTTPLoop is the baseline of the HTTP benchmarks: a plain net/http
// client posting each payload to url, one at a time, over a kept-alive
// connection. Each call of the returned function posts all payloads and
// returns how long that took.
func PlainHTTPLoop(tb testing.TB, url string, payloads []json.RawMessage) func() time.Duration {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	tb.Cleanup(client.CloseIdleConnections)
	return func() time.Duration {
		start := time.Now()
		for _, p := range payloads {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(p))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				tb.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return time.Since(start)
	}
}

// Paired runs baseline and edgepoll once per benchmark iteration, in
// alternating order (drift on a shared machine hits both alike), each
// handling n items and returning its duration, and reports both rates and
// their ratio (edgepoll / baseline).
func Paired(b *testing.B, n int, baseline, edgepoll func(i int) time.Duration) {
	b.Helper()
	var tBase, tEdge time.Duration
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			tBase += baseline(i)
			tEdge += edgepoll(i)
		} else {
			tEdge += edgepoll(i)
			tBase += baseline(i)
		}
	}
	items := float64(b.N * n)
	b.ReportMetric(items/tBase.Seconds(), "baseline-items/s")
	b.ReportMetric(items/tEdge.Seconds(), "edgepoll-items/s")
	b.ReportMetric(tBase.Seconds()/tEdge.Seconds(), "ratio")
	b.ReportMetric(0, "ns/op")
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
		sum, err := cycle.Run(context.Background())
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
