package main

import (
	"context"
	"errors"
	"io"

	"github.com/edgepoll/edgepoll/internal/opscmd"
	"github.com/edgepoll/edgepoll/poll"
)

// checkCmd: `edgepoll check` validates the configuration, then checks the
// key, the target and the state store without delivering anything or moving
// the cursor. One line per check on stdout: "<what>: ok" or
// "<what>: FAIL: <reason>"; exit 0 if all pass, 1 otherwise, 2 for a bad
// configuration.
type checkCmd struct {
	Timeout Seconds `name:"check-timeout" default:"20s" env:"-" help:"Bound on each check."`
}

func (*checkCmd) needsTarget() bool { return true }

func (cmd *checkCmd) run(e *cmdEnv) int {
	c := &opscmd.Checker{W: e.stdout}
	bounded := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(e.ctx, cmd.Timeout.D())
	}
	ctx, cancel := bounded()
	key, err := connectorKey(ctx, e.cli)
	cancel()
	var ue *UsageError
	if errors.As(err, &ue) {
		return fail(e.stderr, err)
	}
	c.Line("configuration", "mode "+e.cli.Mode+", state "+e.cli.State, nil)
	if err != nil {
		c.Line("connector key", "", err)
		return exitFailed
	}
	conn, _ := stateKeys(e.cli, key)

	ctx, cancel = bounded()
	note, err := checkKey(ctx, e, key, conn)
	cancel()
	c.Line("ilert key", note, err)

	ctx, cancel = bounded()
	note, err = checkTarget(ctx, e)
	cancel()
	if errors.As(err, &ue) {
		return fail(e.stderr, err)
	}
	c.Line("target "+e.cli.Mode, note, err)

	ctx, cancel = bounded()
	note, err = checkState(ctx, e, conn)
	cancel()
	c.Line("state "+e.cli.State, note, err)

	if c.Failed {
		return exitFailed
	}
	return exitOK
}

// checkKey polls once with the stored cursor (read without the lease): a
// poll without HA changes nothing on ilert's side. In HA mode a poll would
// take part in the leader election, so it is skipped.
func checkKey(ctx context.Context, e *cmdEnv, key, conn string) (string, error) {
	if e.cli.ClusterID != "" {
		return "skipped: with --cluster-id a poll would take part in the leader election; the first run checks the key", nil
	}
	client, err := poll.NewClient(poll.ClientConfig{BaseURL: e.cli.APIURL, Key: key})
	if err != nil {
		return "", err
	}
	info, _ := inspect(&cmdEnv{ctx: ctx, cli: e.cli, log: e.log}, conn)
	return opscmd.CheckPoll(ctx, client, info.Cursor)
}

// checkTarget builds the target as a run would (MQTT connects here) and asks
// it whether it is reachable; nothing is delivered.
func checkTarget(ctx context.Context, e *cmdEnv) (string, error) {
	sink, err := newSink(ctx, e.cli, e.log, io.Discard)
	if err != nil {
		return "", err
	}
	defer sink.Close()
	return opscmd.CheckSink(ctx, sink)
}

// checkState opens the store, reads the connection's state and takes and
// gives back its lease (opscmd.CheckStore); the cursor is not touched.
func checkState(ctx context.Context, e *cmdEnv, conn string) (string, error) {
	if path, missing, err := storeMissing(e.cli); err != nil || missing {
		// Not created by a check: a typo'd --state must stay visible.
		if err == nil && path != "" {
			err = writable(path)
		}
		return "does not exist yet: the first run creates it and starts from the oldest queued event", err
	}
	store, err := openStore(ctx, e.cli, e.log)
	if err != nil {
		return "", err
	}
	defer store.Close()
	return opscmd.CheckStore(ctx, store, conn, "edgepoll-check-"+runID()[len("run-"):])
}
