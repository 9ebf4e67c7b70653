package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// deadLetterCmd: `edgepoll dead-letter list|replay --dead-letter SPEC`.
type deadLetterCmd struct {
	List   deadLetterListCmd   `cmd:"" help:"Print the connection's dead-lettered items: id, reason, skipped_at (oldest first)."`
	Replay deadLetterReplayCmd `cmd:"" help:"Deliver every dead-lettered item to the configured target, in order, with its original metadata; remove what was delivered; stop at the first failure (exit 1)."`
}

// openDeadLetter opens --dead-letter for the connection of the configured key.
func openDeadLetter(e *cmdEnv) (deadletter.Store, string, error) {
	if e.cli.DeadLetter == "" {
		return nil, "", &UsageError{Msg: "--dead-letter: is required (file:PATH or dynamodb:TABLE, as the runs write it)"}
	}
	conn, err := connection(e)
	if err != nil {
		return nil, "", err
	}
	dl, err := deadletter.Open(e.ctx, e.cli.DeadLetter)
	if err != nil {
		return nil, "", err
	}
	return dl, conn, nil
}

// listDeadLetter opens --dead-letter and lists the connection's records
// (oldest first); the caller closes the store when err is nil.
func listDeadLetter(e *cmdEnv) (deadletter.Store, string, []deadletter.Record, error) {
	dl, conn, err := openDeadLetter(e)
	if err != nil {
		return nil, "", nil, err
	}
	recs, err := dl.List(e.ctx, conn)
	if err != nil {
		dl.Close()
		return nil, "", nil, err
	}
	return dl, conn, recs, nil
}

type deadLetterListCmd struct{}

func (*deadLetterListCmd) needsTarget() bool { return false }

func (*deadLetterListCmd) run(e *cmdEnv) int {
	dl, _, recs, err := listDeadLetter(e)
	if err != nil {
		return fail(e.stderr, err)
	}
	defer dl.Close()
	for _, r := range recs {
		fmt.Fprintf(e.stdout, "%d\t%s\t%s\n", r.ID, r.Reason, r.SkippedAt.UTC().Format(time.RFC3339))
	}
	e.log.Info("dead letter listed", "items", len(recs), "dead_letter", e.cli.DeadLetter)
	return exitOK
}

type deadLetterReplayCmd struct{}

func (*deadLetterReplayCmd) needsTarget() bool { return true }

func (*deadLetterReplayCmd) run(e *cmdEnv) int {
	dl, conn, recs, err := listDeadLetter(e)
	if err != nil {
		return fail(e.stderr, err)
	}
	defer dl.Close()
	if len(recs) == 0 {
		e.log.Info("the dead letter is empty: nothing to replay", "dead_letter", e.cli.DeadLetter)
		return exitOK
	}
	sink, err := newSink(e.ctx, e.cli, e.log, e.stdout)
	if err != nil {
		return fail(e.stderr, err)
	}
	defer sink.Close()
	for i, r := range recs {
		err := deliverOne(e.ctx, sink, poll.NewEvent(r.ID, r.Payload))
		filtered := poll.IsFiltered(err) // --filter passes it over, as a run would
		if err != nil && !filtered {
			e.log.Error("replay stopped: the rest stays in the dead letter", "item", r.ID, "replayed", i, "left", len(recs)-i, "err", err)
			return exitFailed
		}
		// Removed as soon as delivered: a replay stopped later redelivers nothing twice.
		if err := dl.Remove(e.ctx, conn, r.ID); err != nil {
			e.log.Error("delivered but not removed from the dead letter (a next replay delivers it again)", "item", r.ID, "err", err)
			return exitFailed
		}
		if filtered {
			e.log.Info("filtered out by --filter: removed without delivery, as a run passes it over", "item", r.ID, "reason_skipped", r.Reason)
			continue
		}
		e.log.Info("replayed", "item", r.ID, "reason_skipped", r.Reason)
	}
	e.log.Info("dead letter replayed", "items", len(recs))
	return exitOK
}

// deliverOne hands one event to the sink and waits for its result.
func deliverOne(ctx context.Context, sink poll.Sink, ev poll.Event) error {
	res := errors.New("not delivered (stopped)")
	sink.Send(ctx, []poll.Event{ev}, func(_ int, err error) bool {
		res = err
		return false
	})
	return res
}
