package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

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

type checker struct {
	w      io.Writer
	failed bool
}

func (c *checker) line(what, note string, err error) {
	switch {
	case err != nil:
		c.failed = true
		fmt.Fprintf(c.w, "%s: FAIL: %s\n", what, strings.Join(strings.Fields(err.Error()), " "))
	case note != "":
		fmt.Fprintf(c.w, "%s: ok (%s)\n", what, note)
	default:
		fmt.Fprintf(c.w, "%s: ok\n", what)
	}
}

func (cmd *checkCmd) run(e *cmdEnv) int {
	c := &checker{w: e.stdout}
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
	c.line("configuration", "mode "+e.cli.Mode+", state "+e.cli.State, nil)
	if err != nil {
		c.line("connector key", "", err)
		return exitFailed
	}
	conn, _ := stateKeys(e.cli, key)

	ctx, cancel = bounded()
	note, err := checkKey(ctx, e, key, conn)
	cancel()
	c.line("ilert key", note, err)

	ctx, cancel = bounded()
	note, err = checkTarget(ctx, e)
	cancel()
	if errors.As(err, &ue) {
		return fail(e.stderr, err)
	}
	c.line("target "+e.cli.Mode, note, err)

	ctx, cancel = bounded()
	note, err = checkState(ctx, e, conn)
	cancel()
	c.line("state "+e.cli.State, note, err)

	if c.failed {
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
	b, err := client.Poll(ctx, poll.Query{AfterID: info.Cursor})
	if err != nil {
		return "", err
	}
	waiting := fmt.Sprint(len(b.Items))
	if b.Full {
		waiting += " or more"
	}
	return fmt.Sprintf("accepted; %s items waiting after cursor %d", waiting, info.Cursor), nil
}

// checkTarget builds the target as a run would (MQTT connects here) and asks
// it whether it is reachable; nothing is delivered.
func checkTarget(ctx context.Context, e *cmdEnv) (string, error) {
	sink, err := newSink(ctx, e.cli, e.log, io.Discard)
	if err != nil {
		return "", err
	}
	defer sink.Close()
	if ch, ok := sink.(poll.Checker); ok {
		return ch.Check(ctx)
	}
	return "", nil
}

// checkState opens the store, reads the connection's state and takes and
// gives back its lease (a write); the cursor is not touched. A lease held by
// a run is fine: reading worked, writing is that run's proof.
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
	insp, ok := store.(poll.Inspector)
	if !ok {
		return "", errors.New("this backend cannot be inspected")
	}
	info, err := insp.Inspect(ctx, conn)
	if err != nil {
		return "", fmt.Errorf("reading: %w", err)
	}
	cursor := "no cursor yet"
	if info.HasCursor {
		cursor = fmt.Sprintf("cursor %d", info.Cursor)
	}
	l, err := store.Acquire(ctx, conn, "edgepoll-check-"+runID()[len("run-"):])
	if errors.Is(err, poll.ErrLeaseHeld) {
		return fmt.Sprintf("%s; %v, so writing was not tried", cursor, err), nil
	}
	if err != nil {
		return "", fmt.Errorf("writing (taking the lease): %w", err)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Release(rctx); err != nil {
		return "", fmt.Errorf("writing (giving the lease back): %w", err)
	}
	return cursor + "; read and write ok", nil
}
