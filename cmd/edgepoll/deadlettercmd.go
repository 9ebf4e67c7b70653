package main

import (
	"context"

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

type deadLetterListCmd struct{}

func (*deadLetterListCmd) needsTarget() bool { return false }

func (*deadLetterListCmd) run(e *cmdEnv) int {
	return opsExit(e, opsConn(e.cli, e.log).ListDeadLetter(e.ctx, e.stdout))
}

type deadLetterReplayCmd struct{}

func (*deadLetterReplayCmd) needsTarget() bool { return true }

func (*deadLetterReplayCmd) run(e *cmdEnv) int {
	return opsExit(e, opsConn(e.cli, e.log).ReplayDeadLetter(e.ctx, e.stdout))
}
