package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/edgepoll/edgepoll/internal/opscmd"
	"github.com/edgepoll/edgepoll/poll"
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
	if e.cli.fleet != nil {
		return c.runFleet(e)
	}
	conn, err := connection(e)
	if err != nil {
		return fail(e.stderr, err)
	}
	info, err := inspect(e, conn)
	if err != nil {
		return fail(e.stderr, err)
	}
	if c.Output == "json" {
		b, _ := json.Marshal(opscmd.ToStateJSON(conn, info))
		fmt.Fprintf(e.stdout, "%s\n", b)
		return exitOK
	}
	opscmd.PrintState(e.stdout, e.cli.State, e.cli.ClusterID != "", conn, info)
	return exitOK
}

// runFleet lists every connection of the --config file (text: one block
// each; json: an array). A connection whose state cannot be read is
// reported and makes the exit 1; the others are still listed.
func (c *stateShowCmd) runFleet(e *cmdEnv) int {
	code := exitOK
	var all []opscmd.FleetStateJSON
	for i, fc := range e.cli.fleet {
		ce := &cmdEnv{ctx: e.ctx, cli: fc.CLI, log: e.log, stdout: e.stdout, stderr: e.stderr}
		conn, err := connection(ce)
		var info poll.StateInfo
		if err == nil {
			info, err = inspect(ce, conn)
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "edgepoll: error: %s: %v\n", fc.Label(), err)
			code = exitFailed
			continue
		}
		if c.Output == "json" {
			all = append(all, opscmd.FleetStateJSON{Name: fc.Name, StateJSON: opscmd.ToStateJSON(conn, info)})
			continue
		}
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		fmt.Fprintf(e.stdout, "name        %s\n", fc.Name)
		opscmd.PrintState(e.stdout, fc.CLI.State, fc.CLI.ClusterID != "", conn, info)
	}
	if c.Output == "json" {
		if all == nil {
			all = []opscmd.FleetStateJSON{}
		}
		b, _ := json.Marshal(all)
		fmt.Fprintf(e.stdout, "%s\n", b)
	}
	return code
}

// connection is the state key of the configured connector key.
func connection(e *cmdEnv) (string, error) {
	key, err := connectorKey(e.ctx, e.cli)
	if err != nil {
		return "", err
	}
	conn, _ := stateKeys(e.cli, key)
	return conn, nil
}

// stateMissing is the error of a state store that does not exist (a
// typo'd --state naming a local file): commands that read or repair state
// refuse it rather than take it as "no cursor" or create a fresh store.
func stateMissing(cli *CLI) error {
	_, missing, err := storeMissing(cli)
	if err != nil || !missing {
		return err
	}
	return fmt.Errorf("--state %s: the state store does not exist (a typo in --state? a run creates it; state set-cursor --create creates it with the cursor)", cli.State)
}

// storeMissing reports whether the --state store does not exist
// (state.Backend.Exists), and for a local one its path.
func storeMissing(cli *CLI) (path string, missing bool, err error) {
	b, rest, err := parseState(cli.State)
	if err != nil {
		return "", false, &UsageError{Msg: "--state: " + err.Error()}
	}
	exists, err := b.StoreExists(rest)
	if err != nil {
		return "", false, fmt.Errorf("--state %s: %v", cli.State, err)
	}
	if b.Local {
		path = rest
	}
	return path, !exists, nil
}

// inspect reads the connection's state without the lease and without
// creating anything: a local state file that does not exist is an error.
func inspect(e *cmdEnv, conn string) (poll.StateInfo, error) {
	if err := stateMissing(e.cli); err != nil {
		return poll.StateInfo{}, err
	}
	store, err := openStore(e.ctx, e.cli, e.log)
	if err != nil {
		return poll.StateInfo{}, err
	}
	defer store.Close()
	insp, ok := store.(poll.Inspector)
	if !ok {
		return poll.StateInfo{}, fmt.Errorf("--state %s: this backend cannot be inspected", e.cli.State)
	}
	return insp.Inspect(e.ctx, conn)
}

// withLease runs fn holding the connection's lease, as a run would take it.
// If another run holds it: exit 1 naming the holder, nothing changed.
// A local state file that does not exist is exit 1 naming it, and nothing
// is created, unless create.
func withLease(e *cmdEnv, what string, create bool, fn func(l poll.Lease, set poll.CursorSetter, cur int64, has bool) error) int {
	if !create {
		if err := stateMissing(e.cli); err != nil {
			return fail(e.stderr, fmt.Errorf("%s: %w", what, err))
		}
	}
	conn, err := connection(e)
	if err != nil {
		return fail(e.stderr, err)
	}
	store, err := openStore(e.ctx, e.cli, e.log)
	if err != nil {
		return fail(e.stderr, err)
	}
	defer store.Close()
	l, err := store.Acquire(e.ctx, conn, "edgepoll-"+what+"-"+runID()[len("run-"):])
	if errors.Is(err, poll.ErrLeaseHeld) {
		fmt.Fprintf(e.stderr, "edgepoll: error: %s: the lease is taken: %v; nothing changed (stop that run, or wait until it is done)\n", what, err)
		return exitFailed
	}
	if err != nil {
		return fail(e.stderr, err)
	}
	set, ok := l.(poll.CursorSetter)
	if !ok {
		_ = l.Release(e.ctx)
		return fail(e.stderr, fmt.Errorf("%s: this state backend cannot rewrite the cursor", what))
	}
	cur, has, err := l.Load(e.ctx)
	if err == nil {
		err = fn(l, set, cur.Cursor, has)
	}
	if rerr := l.Release(e.ctx); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return fail(e.stderr, fmt.Errorf("%s: %w", what, err))
	}
	if e.cli.ClusterID != "" {
		e.log.Warn("--cluster-id is set: in HA mode ilert keeps the cursor, the one in --state is not used")
	}
	return exitOK
}

type stateSetCursorCmd struct {
	Cursor int64 `arg:"" name:"N" help:"The edge item id the next poll starts after (after-id=N)."`
	Create bool  `name:"create" env:"-" help:"Create the local state file if it does not exist (a cursor set before the first run); without it, a missing file is an error (a typo in --state)."`
}

func (*stateSetCursorCmd) needsTarget() bool { return false }

func (c *stateSetCursorCmd) run(e *cmdEnv) int {
	if c.Cursor < 0 {
		return fail(e.stderr, &UsageError{Msg: "state set-cursor: N must be 0 or more"})
	}
	return withLease(e, "set-cursor", c.Create, func(_ poll.Lease, set poll.CursorSetter, cur int64, has bool) error {
		if err := set.SetCursor(e.ctx, c.Cursor); err != nil {
			return err
		}
		e.log.Info("cursor set: the next poll has after-id="+fmt.Sprint(c.Cursor), "was", opscmd.Was(cur, has), "cursor", c.Cursor)
		return nil
	})
}

type stateResetCmd struct{}

func (*stateResetCmd) needsTarget() bool { return false }

func (*stateResetCmd) run(e *cmdEnv) int {
	return withLease(e, "reset", false, func(_ poll.Lease, set poll.CursorSetter, cur int64, has bool) error {
		if err := set.ResetCursor(e.ctx); err != nil {
			return err
		}
		e.log.Info("cursor forgotten: the next poll has after-id=0", "was", opscmd.Was(cur, has))
		return nil
	})
}

type stateImportCmd struct {
	Path  string `arg:"" name:"PATH" type:"path" help:"The reference agent's SQLite file (its -f/--file, default ./ilagent.db3)."`
	Force bool   `name:"force" env:"-" help:"Move an existing cursor backwards too."`
}

func (*stateImportCmd) needsTarget() bool { return false }

func (c *stateImportCmd) run(e *cmdEnv) int {
	key, err := connectorKey(e.ctx, e.cli)
	if err != nil {
		return fail(e.stderr, err)
	}
	theirs, err := readIlagentCursor(e.ctx, c.Path, key)
	if err != nil {
		return fail(e.stderr, fmt.Errorf("state import-ilagent: %w", err))
	}
	return withLease(e, "import-ilagent", false, func(_ poll.Lease, set poll.CursorSetter, cur int64, has bool) error {
		switch {
		case has && theirs == cur:
			e.log.Info("cursor already at the reference agent's", "cursor", cur)
			return nil
		case has && theirs < cur && !c.Force:
			return fmt.Errorf("refusing to move the cursor backwards from %d to the reference agent's %d (that would deliver %d items again; --force to do it anyway)", cur, theirs, cur-theirs)
		}
		if err := set.SetCursor(e.ctx, theirs); err != nil {
			return err
		}
		e.log.Info("cursor imported from the reference agent", "file", c.Path, "was", opscmd.Was(cur, has), "cursor", theirs)
		return nil
	})
}
