package opscmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// PrintRecords writes `dead-letter list`'s lines: id, reason, skipped_at,
// tab-separated.
func PrintRecords(w io.Writer, recs []deadletter.Record) {
	for _, r := range recs {
		fmt.Fprintf(w, "%d\t%s\t%s\n", r.ID, r.Reason, r.SkippedAt.UTC().Format(time.RFC3339))
	}
}

// Replay delivers recs, connection conn's dead-lettered items, to sink in
// order, removing each from dl as soon as it is delivered (or filtered
// out), and stops at the first failure, logging what is left. It reports
// whether every item was replayed.
func Replay(ctx context.Context, sink poll.Sink, dl deadletter.Store, conn string, recs []deadletter.Record, log *slog.Logger) bool {
	for i, r := range recs {
		err := DeliverOne(ctx, sink, poll.NewEvent(r.ID, r.Payload))
		filtered := poll.IsFiltered(err) // --filter passes it over, as a run would
		if err != nil && !filtered {
			log.Error("replay stopped: the rest stays in the dead letter", "item", r.ID, "replayed", i, "left", len(recs)-i, "err", err)
			return false
		}
		// Removed as soon as delivered: a replay stopped later redelivers nothing twice.
		if err := dl.Remove(ctx, conn, r.ID); err != nil {
			log.Error("delivered but not removed from the dead letter (a next replay delivers it again)", "item", r.ID, "err", err)
			return false
		}
		if filtered {
			log.Info("filtered out by --filter: removed without delivery, as a run passes it over", "item", r.ID, "reason_skipped", r.Reason)
			continue
		}
		log.Info("replayed", "item", r.ID, "reason_skipped", r.Reason)
	}
	log.Info("dead letter replayed", "items", len(recs))
	return true
}

// DeliverOne hands one event to the sink and waits for its result.
func DeliverOne(ctx context.Context, sink poll.Sink, ev poll.Event) error {
	res := errors.New("not delivered (stopped)")
	sink.Send(ctx, []poll.Event{ev}, func(_ int, err error) bool {
		res = err
		return false
	})
	return res
}
