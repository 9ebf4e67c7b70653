package sqlite_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/poll/ilerttest"
	"github.com/edgepoll/edgepoll/sinks"
	httpsink "github.com/edgepoll/edgepoll/sinks/http"
	"github.com/edgepoll/edgepoll/sinks/sinktest"
	"github.com/edgepoll/edgepoll/state/sqlite"
)

// drainItems is a drain of ten full polls, as cmd/edgepoll's
// BenchmarkDrainHTTP.
const drainItems = poll.MaxPollsPerCycle * poll.BatchLimit

// BenchmarkDrainHTTPStoreCommit is issue 17.4's question: a cycle's HTTP
// drain (loopback, 1000 items, the real http target) with SQLite state,
// the hot cursor (one pwrite per item into the lock file, fsync at batch
// end) as the baseline against per-item SQLite commits (WAL,
// synchronous=NORMAL per item, FULL at batch end: CommitEveryItemBackend),
// paired in one run: ratio = hot-cursor time / per-item-commit time (below
// 0.95: the per-item commits cost more than 5%). Secondary figure: a bare
// loop of the same polls and POSTs (ratio-vs-bare-loop).
func BenchmarkDrainHTTPStoreCommit(b *testing.B) {
	payloads := ilerttest.AlertEvents(drainItems)
	url := sinktest.HTTPTarget(b).URL
	post := sinktest.PlainPost(b, url)
	bareLoop := sinktest.PlainDrain(b, payloads, func(page []sinktest.PlainItem) {
		for _, it := range page {
			post(it.Payload)
		}
	})
	drain := func(open func(ctx context.Context, path string, log *slog.Logger) (poll.Store, error)) func(int) time.Duration {
		store, err := open(context.Background(), filepath.Join(b.TempDir(), "state.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = store.Close() })
		opts := httpsink.Options{URL: url, Method: "POST", Timeout: 10 * time.Second}
		sink, err := opts.Open(context.Background(), sinks.Shared{}, sinks.Env{Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = sink.Close() })
		return sinktest.CycleDrain(b, sink, store, payloads)
	}
	bareLoop(0)
	sinktest.Paired(b, drainItems, drain(sqlite.Backend.Open), drain(sqlite.CommitEveryItemBackend.Open),
		sinktest.Reference{Name: "bare-loop", Run: bareLoop})
}
