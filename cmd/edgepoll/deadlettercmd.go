package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/edgepoll/edgepoll/internal/opscmd"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// deadLetterCmd: `edgepoll dead-letter list|replay --dead-letter SPEC`.
type deadLetterCmd struct {
	List   deadLetterListCmd   `cmd:"" help:"Print the connection's dead-lettered items: id, reason, skipped_at (oldest first)."`
	Replay deadLetterReplayCmd `cmd:"" help:"Deliver every dead-lettered item to the configured target, in order, with its original metadata; remove what was delivered; stop at the first failure (exit 1)."`
}

// openDeadLetterStore opens --dead-letter: nil for none; for state (the
// default) the dead letter the state backend keeps (deadletter.OpenInState).
func openDeadLetterStore(ctx context.Context, cli *CLI) (deadletter.Store, error) {
	scheme, _, err := deadletter.Parse(cli.DeadLetter)
	switch {
	case err != nil:
		return nil, err
	case scheme == deadletter.None:
		return nil, nil
	case scheme == deadletter.InState:
		b, rest, err := parseState(cli.State)
		if err != nil {
			return nil, &UsageError{Msg: "--state: " + err.Error()}
		}
		return deadletter.OpenInState(ctx, b, rest, nil)
	}
	return deadletter.Open(ctx, cli.DeadLetter)
}

// deadLetterName is the dead letter as the operator can find it: the
// --dead-letter value, and for state where in the state store it is.
func deadLetterName(cli *CLI) string {
	if cli.DeadLetter != deadletter.InState {
		return cli.DeadLetter
	}
	b, rest, err := parseState(cli.State)
	if err != nil {
		return cli.DeadLetter
	}
	return cli.DeadLetter + " (" + deadletter.InStateName(b, rest) + ")"
}

// openDeadLetter opens --dead-letter for the connection of the configured
// key, as the runs write it. A dead letter that does not exist (a typo'd
// file, a state file that is not there) is an error naming it, never an
// empty list.
func openDeadLetter(e *cmdEnv) (deadletter.Store, string, error) {
	if err := deadLetterExists(e.cli); err != nil {
		return nil, "", err
	}
	conn, err := connection(e)
	if err != nil {
		return nil, "", err
	}
	dl, err := openDeadLetterStore(e.ctx, e.cli)
	if err != nil {
		return nil, "", err
	}
	return dl, conn, nil
}

// deadLetterExists refuses --dead-letter none, a file:PATH that does not
// exist, and state in a local state file that does not exist.
func deadLetterExists(cli *CLI) error {
	scheme, _, err := deadletter.Parse(cli.DeadLetter)
	switch {
	case err != nil:
		return &UsageError{Msg: "--dead-letter: " + err.Error()}
	case scheme == deadletter.None:
		return &UsageError{Msg: "--dead-letter: none keeps nothing to list or replay: name the dead letter the runs write (state, the default, file:PATH or dynamodb:TABLE)"}
	case scheme == deadletter.InState:
		return stateMissing(cli)
	}
	if path, ok := deadletter.LocalFile(cli.DeadLetter); ok {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--dead-letter: %s does not exist (no item was ever dead-lettered there: is the path the one the runs use?)", path)
		}
	}
	return nil
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
	opscmd.PrintRecords(e.stdout, recs)
	e.log.Info("dead letter listed", "items", len(recs), "dead_letter", deadLetterName(e.cli))
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
		e.log.Info("the dead letter is empty: nothing to replay", "dead_letter", deadLetterName(e.cli))
		return exitOK
	}
	sink, err := newSink(e.ctx, e.cli, e.log, e.stdout)
	if err != nil {
		return fail(e.stderr, err)
	}
	defer sink.Close()
	if !opscmd.Replay(e.ctx, sink, dl, conn, recs, e.log) {
		return exitFailed
	}
	return exitOK
}
