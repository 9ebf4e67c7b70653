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

func BenchmarkZZ(b *testing.B) {
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
	plainC := &nethttp.Client{Transport: &nethttp.Transport{MaxIdleConnsPerHost: 4}}
	loop := func(c *nethttp.Client, hdrs bool) time.Duration {
		start := time.Now()
		for i, p := range payloads {
			req, _ := nethttp.NewRequest(nethttp.MethodPost, srv.URL, bytes.NewReader(p))
			req.Header.Set("Content-Type", "application/json")
			if hdrs {
				req.Header.Set("User-Agent", "edgepoll/dev")
				req.Header.Set("X-ilert-Event-Type", evs[i].EventType)
				req.Header.Set("X-ilert-Alert-Id", evs[i].AlertID)
				req.Header.Set("X-ilert-Edge-Item-Id", evs[i].ItemID())
			}
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return time.Since(start)
	}
	sink, _ := New(Config{URL: srv.URL}, nil)
	variants := map[string]func() time.Duration{
		"sink": func() time.Duration {
			start := time.Now()
			for _, ev := range evs {
				if err := sink.Deliver(context.Background(), ev); err != nil {
					b.Fatal(err)
				}
			}
			return time.Since(start)
		},
		"hdrs":          func() time.Duration { return loop(plainC, true) },
		"clienttimeout": func() time.Duration { return loop(&nethttp.Client{Transport: plainC.Transport, Timeout: 10 * time.Second}, false) },
		"rht":           func() time.Duration { return loop(&nethttp.Client{Transport: &nethttp.Transport{MaxIdleConnsPerHost: 4, ResponseHeaderTimeout: 10 * time.Second}}, false) },
		"plain":         func() time.Duration { return loop(plainC, false) },
	}
	for name, v := range variants {
		b.Run(name, func(b *testing.B) {
			loop(plainC, false)
			v()
			var tp, tv time.Duration
			for i := 0; b.Loop(); i++ {
				if i%2 == 0 {
					tp += loop(plainC, false)
					tv += v()
				} else {
					tv += v()
					tp += loop(plainC, false)
				}
			}
			b.ReportMetric(tp.Seconds()/tv.Seconds(), "ratio")
		})
	}
}
