package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/internal/dynalitetest"
	"github.com/edgepoll/edgepoll/internal/latencyproxy"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	httpsink "github.com/edgepoll/edgepoll/sinks/http"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
)

const drainItems = 1000

// BenchmarkDrainHTTP measures a whole cycle draining 1000 items (10 polls of
// 100) from the fake ilert API to an HTTP target, cursor persisted after
// every item (DynamoDB: by the cycle's saver, off the delivery path; a
// dynalite on loopback), for each state backend, against the baseline
// issue 12 names: a bare loop with no state that polls its own fake API
// the same way (sinktest.PlainDrain) and posts each page's bodies with a
// plain net/http client to the same target. Paired in one benchmark
// (sinktest.Paired: both in every iteration, alternating order; ratio =
// edgepoll / bare loop). Secondary figure: the plain client posting the
// 1000 bodies alone, no polling (ratio-vs-post-only, the former baseline).
func BenchmarkDrainHTTP(b *testing.B) {
	for _, rtt := range []time.Duration{0, time.Millisecond} {
		name := "loopback"
		if rtt > 0 {
			name = "rtt-1ms"
		}
		for _, backend := range []string{"sqlite", "json", "dynamodb"} {
			b.Run(name+"/"+backend, func(b *testing.B) { benchDrain(b, rtt, backend) })
		}
	}
}

// drainURL is the target's URL, through a latency proxy when rtt > 0.
func drainURL(b *testing.B, rtt time.Duration) string {
	srv := sinktest.HTTPTarget(b)
	if rtt == 0 {
		return srv.URL
	}
	p, err := latencyproxy.Start(strings.TrimPrefix(srv.URL, "http://"), rtt/2)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return "http://" + p.Addr
}

func benchDrain(b *testing.B, rtt time.Duration, backend string) {
	payloads := ilerttest.AlertEvents(drainItems)
	url := drainURL(b, rtt)
	post := sinktest.PlainPost(b, url)
	bareLoop := sinktest.PlainDrain(b, payloads, func(page []sinktest.PlainItem) {
		for _, it := range page {
			post(it.Payload)
		}
	})
	postOnly := sinktest.PlainHTTPLoop(b, url, payloads)
	log := slog.New(slog.DiscardHandler)
	state := func() string { return backend + ":" + filepath.Join(b.TempDir(), "state") }
	if backend == "dynamodb" {
		ddb := dynalitetest.Start(b)
		ddb.CreateTable(b, "edgepoll-bench")
		for _, kv := range ddb.Env() {
			k, v, _ := strings.Cut(kv, "=")
			b.Setenv(k, v)
		}
		state = func() string { return "dynamodb:edgepoll-bench" }
	}
	edgepoll := func(i int) time.Duration {
		key := fmt.Sprintf("iec1-bench-%d", i)
		api := ilerttest.New(key)
		api.Push(key, payloads...)
		apiSrv := api.Start()
		defer apiSrv.Close()
		cli := newCLI()
		cli.APIURL, cli.Mode, cli.State = apiSrv.URL, "http", state()
		*cli.targets["http"].(*httpsink.Options) = httpsink.Options{URL: url, Method: "POST", Timeout: 10 * time.Second}
		cli.key, cli.DeadLetter = key, "state" // the default (newCLI applies no defaults)
		r := newRunner(cli, "bench", log, io.Discard, false)
		defer r.Close()
		cycle, inv, err := r.Cycle(context.Background(), 0)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		sum, err := cycle.Run(context.Background(), inv)
		d := time.Since(start)
		if err != nil || sum.Delivered != drainItems {
			b.Fatalf("delivered %d: %v", sum.Delivered, err)
		}
		return d
	}
	bareLoop(0) // warm both baselines' target connections
	postOnly()
	sinktest.Paired(b, drainItems, bareLoop, edgepoll,
		sinktest.Reference{Name: "post-only", Run: func(int) time.Duration { return postOnly() }})
}
