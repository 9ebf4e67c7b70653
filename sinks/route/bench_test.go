package route_test

import (
	"context"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	httpsink "github.com/edgepoll/edgepoll/sinks/http"
	"github.com/edgepoll/edgepoll/sinks/route"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

// Typical expressions: a filter that looks at the event type (and lets
// every generated event through, so both drains deliver the same 1000
// items) and a transform that reshapes the payload into a ticket.
const (
	benchFilter    = `.eventType | startswith("alert-")`
	benchTransform = `{title: .summary, state: .status, priority, alert: .id, source: .alertSource.name, at: .timestamp}`
)

func httpSink(b *testing.B, url string) poll.Sink {
	s, err := httpsink.New(httpsink.Config{URL: url, Timeout: 10 * time.Second}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return poll.OneByOne(s)
}

// BenchmarkDrainHTTPRouted: a whole cycle (SQLite cursor after every item)
// draining 1000 items to an HTTP target on loopback through a typical
// filter and transform, paired against the same cycle without them (the
// plain drain) in the same run; ratio = plain time / routed time. The bare
// loop (poll and post, no state) is a secondary figure.
func BenchmarkDrainHTTPRouted(b *testing.B) {
	payloads := ilerttest.AlertEvents(1000)
	srv := sinktest.HTTPTarget(b)
	routed, err := route.New(httpSink(b, srv.URL), benchFilter, benchTransform)
	if err != nil {
		b.Fatal(err)
	}
	plain := sinktest.CycleDrain(b, httpSink(b, srv.URL), nil, payloads)
	withRoute := sinktest.CycleDrain(b, routed, nil, payloads)
	post := sinktest.PlainPost(b, srv.URL)
	bare := sinktest.PlainDrain(b, payloads, func(page []sinktest.PlainItem) {
		for _, it := range page {
			post(it.Payload)
		}
	})
	plain(0) // warm the connections
	withRoute(0)
	bare(0)
	sinktest.Paired(b, len(payloads), plain, withRoute, sinktest.Reference{Name: "bare-loop", Run: bare})
}

// BenchmarkEvaluate: what the route costs per item, without a target:
// decoding the payload, the filter, the transform and encoding its output
// (Apply), for the typical expressions above, on the generated alert
// payloads (about 330 bytes).
func BenchmarkEvaluate(b *testing.B) {
	payloads := ilerttest.AlertEvents(1000)
	evs := make([]poll.Event, len(payloads))
	for i, p := range payloads {
		evs[i] = poll.NewEvent(int64(i+1), p)
	}
	for _, tc := range []struct{ name, filter, transform string }{
		{"filter", benchFilter, ""},
		{"transform", "", benchTransform},
		{"filter+transform", benchFilter, benchTransform},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := route.New(sinktest.Discard{}, tc.filter, tc.transform)
			if err != nil {
				b.Fatal(err)
			}
			rs := s.(*route.Sink)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := rs.Apply(ctx, evs[i%len(evs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
