package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/edgepoll/edgepoll/internal/opscmd"
	"github.com/edgepoll/edgepoll/poll"
	"github.com/edgepoll/edgepoll/state"
	"github.com/edgepoll/edgepoll/state/deadletter"
)

// stateCmd: `edgepoll state ...`, the operator's view of and hand on the
// connection's cursor (cli.md, "Operator commands").
type stateCmd struct {
	Show          stateShowCmd      `cmd:"" help:"Show the connection's cursor, when it was written, the lease holder and the refusal streak (read-only; works while a run holds the lease)."`
	SetCursor     stateSetCursorCmd `cmd:"" name:"set-cursor" help:"Set the cursor: the next cycle polls with after-id=N (lower: replay; higher: skip). Takes the lease."`
	Reset         stateResetCmd     `cmd:"" help:"Forget the cursor: the next poll has after-id=0. Takes the lease."`
	ImportIlagent stateImportCmd    `cmd:"" name:"import-ilagent" help:"Take the cursor from the reference agent's (ilagent) SQLite file. Takes the lease."`
}

type stateShowCmd struct {
	Output string `name:"output" short:"o" enum:"text,json" default:"text" env:"-" help:"text or json." predictor:"one-of:text,json"`
}

func (*stateShowCmd) needsTarget() bool { return false }

func (c *stateShowCmd) run(e *cmdEnv) int {
	if e.cli.fleet == nil {
		return opsExit(e, opsConn(e.cli, e.log).Show(e.ctx, e.stdout, c.Output == "json"))
	}
	conns := make([]opscmd.Named, len(e.cli.fleet))
	for i, fc := range e.cli.fleet {
		conns[i] = opscmd.Named{Name: fc.Name, Label: fc.Label(), Conn: opsConn(fc.CLI, e.log)}
	}
	return opsExit(e, opscmd.ShowAll(e.ctx, e.stdout, e.stderr, conns, c.Output == "json"))
}

// opsConn is connection cli as the operator commands (opscmd) see it.
func opsConn(cli *CLI, log *slog.Logger) *opscmd.Conn {
	return &opscmd.Conn{
		State: cli.State, Mode: cli.Mode, DeadLetter: cli.DeadLetter, APIURL: cli.APIURL,
		ClusterID: cli.ClusterID, InstanceID: cli.InstanceID, RunID: runID(), Log: log,
		Key: func(ctx context.Context) (string, error) { return connectorKey(ctx, cli) },
		StateKey: func(key string) string {
			conn, _ := stateKeys(cli, key)
			return conn
		},
		ParseState:     func() (state.Backend, string, error) { return parseState(cli.State) },
		OpenStore:      func(ctx context.Context) (poll.Store, error) { return openStore(ctx, cli, log) },
		OpenDeadLetter: func(ctx context.Context) (deadletter.Store, error) { return openDeadLetterStore(ctx, cli) },
		NewSink: func(ctx context.Context, stdout io.Writer) (poll.Sink, error) {
			return newSink(ctx, cli, log, stdout)
		},
		Usage: func(msg string) error { return &UsageError{Msg: msg} },
		IsUsage: func(err error) bool {
			var ue *UsageError
			return errors.As(err, &ue)
		},
	}
}

// opsExit is the exit code of an operator command that ended with err:
// fail's, or 1 for one opscmd has reported already.
func opsExit(e *cmdEnv, err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, opscmd.ErrReported):
		return exitFailed
	}
	return fail(e.stderr, err)
}

type stateSetCursorCmd struct {
	Cursor int64 `arg:"" name:"N" help:"The edge item id the next poll starts after (after-id=N)."`
	Create bool  `name:"create" env:"-" help:"Create the local state file if it does not exist (a cursor set before the first run); without it, a missing file is an error (a typo in --state)."`
}

func (*stateSetCursorCmd) needsTarget() bool { return false }

func (c *stateSetCursorCmd) run(e *cmdEnv) int {
	return opsExit(e, opsConn(e.cli, e.log).SetCursor(e.ctx, e.stderr, c.Cursor, c.Create))
}

type stateResetCmd struct{}

func (*stateResetCmd) needsTarget() bool { return false }

func (*stateResetCmd) run(e *cmdEnv) int {
	return opsExit(e, opsConn(e.cli, e.log).Reset(e.ctx, e.stderr))
}

type stateImportCmd struct {
	Path  string `arg:"" name:"PATH" type:"path" help:"The reference agent's SQLite file (its -f/--file, default ./ilagent.db3)."`
	Force bool   `name:"force" env:"-" help:"Move an existing cursor backwards too."`
}

func (*stateImportCmd) needsTarget() bool { return false }

func (c *stateImportCmd) run(e *cmdEnv) int {
	return opsExit(e, opsConn(e.cli, e.log).ImportIlagent(e.ctx, e.stderr, c.Path, c.Force, readIlagentCursor))
}
