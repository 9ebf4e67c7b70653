package http

import (
	"context"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
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
	srv := sinktest.HTTPTarget(b)
	plain := sinktest.PlainHTTPLoop(b, srv.URL, payloads)
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
