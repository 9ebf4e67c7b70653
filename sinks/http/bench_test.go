package http

import (
	"bytes"
	"context"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
)

// BenchmarkDeliver: the sink alone delivering 1000 alert payloads over
// loopback, against a plain net/http loop posting the same bodies in the
// same run.
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
	b.Run("baseline-plain-loop", func(b *testing.B) {
		client := &nethttp.Client{Transport: &nethttp.Transport{MaxIdleConnsPerHost: 4}}
		for i := 0; i < b.N; i++ {
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
		}
		b.ReportMetric(float64(b.N*len(payloads))/b.Elapsed().Seconds(), "items/s")
	})
	b.Run("sink", func(b *testing.B) {
		s, err := New(Config{URL: srv.URL}, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			for _, ev := range evs {
				if err := s.Deliver(context.Background(), ev); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "items/s")
	})
}
