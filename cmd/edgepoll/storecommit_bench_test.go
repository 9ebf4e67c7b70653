//go:build !lambda

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll/ilerttest"
	httpsink "github.com/edgepoll/edgepoll/sinks/http"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
	"github.com/edgepoll/edgepoll/state/sqlite"
)

// BenchmarkDrainHTTPStoreCommit is issue 17.4's question: the HTTP drain of
// BenchmarkDrainHTTP (loopback, 1000 items) with SQLite state, the hot
// cursor (one pwrite per item into the lock file, fsync at batch end) as
// the baseline against per-item SQLite commits (WAL, synchronous=NORMAL
// per item, FULL at batch end: sqlite.CommitEveryItemBackend), paired in
// one run: ratio = hot-cursor time / per-item-commit time (below 0.95: the
// per-item commits cost more than 5%). Secondary figure: the bare loop of
// BenchmarkDrainHTTP (ratio-vs-bare-loop).
func BenchmarkDrainHTTPStoreCommit(b *testing.B) {
	stores = append(stores, sqlite.CommitEveryItemBackend)
	b.Cleanup(func() { stores = stores[:len(stores)-1] })
	payloads := ilerttest.AlertEvents(drainItems)
	url := drainURL(b, 0)
	post := sinktest.PlainPost(b, url)
	bareLoop := sinktest.PlainDrain(b, payloads, func(page []sinktest.PlainItem) {
		for _, it := range page {
			post(it.Payload)
		}
	})
	log := slog.New(slog.DiscardHandler)
	drain := func(scheme string) func(i int) time.Duration {
		return func(i int) time.Duration {
			key := fmt.Sprintf("iec1-bench-%s-%d", scheme, i)
			api := ilerttest.New(key)
			api.Push(key, payloads...)
			apiSrv := api.Start()
			defer apiSrv.Close()
			cli := newCLI()
			cli.APIURL, cli.Mode, cli.State = apiSrv.URL, "http", scheme+":"+filepath.Join(b.TempDir(), "state")
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
	}
	bareLoop(0)
	sinktest.Paired(b, drainItems, drain("sqlite"), drain("sqlite-commit"),
		sinktest.Reference{Name: "bare-loop", Run: bareLoop})
}
