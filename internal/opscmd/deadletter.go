package opscmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// ListDeadLetter writes the connection's dead-lettered items to w (`dead-letter
// list`, PrintRecords), oldest first.
func (c *Conn) ListDeadLetter(ctx context.Context, w io.Writer) error {
	dl, _, recs, err := c.listDeadLetter(ctx)
	if err != nil {
		return err
	}
	defer dl.Close()
	PrintRecords(w, recs)
	c.Log.Info("dead letter listed", "items", len(recs), "dead_letter", c.deadLetterName())
	return nil
}

// ReplayDeadLetter delivers the connection's dead-lettered items to the
// target built with stdout (`dead-letter replay`, Replay); a replay that
// stopped is ErrReported.
func (c *Conn) ReplayDeadLetter(ctx context.Context, stdout io.Writer) error {
	dl, conn, recs, err := c.listDeadLetter(ctx)
	if err != nil {
		return err
	}
	defer dl.Close()
	if len(recs) == 0 {
		c.Log.Info("the dead letter is empty: nothing to replay", "dead_letter", c.deadLetterName())
		return nil
	}
	sink, err := c.NewSink(ctx, stdout)
	if err != nil {
		return err
	}
	defer sink.Close()
	if !Replay(ctx, sink, dl, conn, recs, c.Log) {
		return ErrReported
	}
	return nil
}

// deadLetterName is the dead letter as the operator can find it: the
// --dead-letter value, and for state where in the state store it is.
func (c *Conn) deadLetterName() string {
	if c.DeadLetter != deadletter.InState {
		return c.DeadLetter
	}
	b, rest, err := c.ParseState()
	if err != nil {
		return c.DeadLetter
	}
	return c.DeadLetter + " (" + deadletter.InStateName(b, rest) + ")"
}

// listDeadLetter opens --dead-letter for the connection of the configured
// key, as the runs write it, and lists the connection's records (oldest
// first); the caller closes the store when err is nil. A dead letter that
// does not exist (a typo'd file, a state file that is not there) is an
// error naming it, never an empty list.
func (c *Conn) listDeadLetter(ctx context.Context) (deadletter.Store, string, []deadletter.Record, error) {
	if err := c.deadLetterExists(); err != nil {
		return nil, "", nil, err
	}
	conn, err := c.connection(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	dl, err := c.OpenDeadLetter(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	recs, err := dl.List(ctx, conn)
	if err != nil {
		dl.Close()
		return nil, "", nil, err
	}
	return dl, conn, recs, nil
}

// deadLetterExists refuses --dead-letter none, a file:PATH that does not
// exist, and state in a local state file that does not exist.
func (c *Conn) deadLetterExists() error {
	scheme, _, err := deadletter.Parse(c.DeadLetter)
	switch {
	case err != nil:
		return c.Usage("--dead-letter: " + err.Error())
	case scheme == deadletter.None:
		return c.Usage("--dead-letter: none keeps nothing to list or replay: name the dead letter the runs write (state, the default, file:PATH or dynamodb:TABLE)")
	case scheme == deadletter.InState:
		return c.stateMissing()
	}
	if path, ok := deadletter.LocalFile(c.DeadLetter); ok {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--dead-letter: %s does not exist (no item was ever dead-lettered there: is the path the one the runs use?)", path)
		}
	}
	return nil
}

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
