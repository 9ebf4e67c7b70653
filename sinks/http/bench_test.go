package http

import (
	"bytes"
	"context"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// BenchmarkDeliver: the sink alone delivering 1000 alert payloads over
// loopback, against a plain net/http loop posting the same bodies to the
// same server. Each iteration runs both, in alternating order, so drift on a
// shared machine hits both alike; it reports both rates and the ratio
// (sink / plain).
func BenchmarkDeliver(b *testing.B) {
	payloads := ilerttest.AlertEvents(1000)
	evs := make([]poll.Event, len(payloads))
	for i, p := range payloads {
		evs[i] = poll.NewEvent(int64(i+1), p)
	}
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(nethttp.StatusNoContent)
	}))
	defer srv.Close()
	client := &nethttp.Client{Transport: &nethttp.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	plain := func() time.Duration {
		start := time.Now()
		for _, p := range payloads {
			req, _ := nethttp.NewRequest(nethttp.MethodPost, srv.URL, bytes.NewReader(p))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return time.Since(start)
	}
	s, err := New(Config{URL: srv.URL}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sink := func() time.Duration {
		start := time.Now()
		for _, ev := range evs {
			if err := s.Deliver(context.Background(), ev); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	plain() // warm both connections
	sink()
	var tPlain, tSink time.Duration
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			tPlain += plain()
			tSink += sink()
		} else {
			tSink += sink()
			tPlain += plain()
		}
	}
	n := float64(b.N * len(evs))
	b.ReportMetric(n/tPlain.Seconds(), "plain-items/s")
	b.ReportMetric(n/tSink.Seconds(), "sink-items/s")
	b.ReportMetric(tPlain.Seconds()/tSink.Seconds(), "ratio")
	b.ReportMetric(0, "ns/op")
}
