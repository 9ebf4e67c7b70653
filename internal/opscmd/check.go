package opscmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/edgepoll/edgepoll/poll"
)

// Checker writes `check`'s report: one line per check, "<what>: ok",
// "<what>: ok (<note>)" or "<what>: FAIL: <reason>" (on one line).
type Checker struct {
	W      io.Writer
	Failed bool // a check failed
}

// Line reports one check.
func (c *Checker) Line(what, note string, err error) {
	switch {
	case err != nil:
		c.Failed = true
		fmt.Fprintf(c.W, "%s: FAIL: %s\n", what, strings.Join(strings.Fields(err.Error()), " "))
	case note != "":
		fmt.Fprintf(c.W, "%s: ok (%s)\n", what, note)
	default:
		fmt.Fprintf(c.W, "%s: ok\n", what)
	}
}

// Check is `edgepoll check` of the connection: it checks the connector
// key, the ilert key (a poll), the target and the state store, each within
// timeout, without delivering anything or moving the cursor, and writes one
// line per check to w (Checker). A check that fails is ErrReported; a
// configuration error (IsUsage) of the key or the target is returned
// as it is, the check stopping there. writable tells whether a local state
// file that does not exist yet can be created.
func (c *Conn) Check(ctx context.Context, w io.Writer, timeout time.Duration, writable func(path string) error) error {
	ch := &Checker{W: w}
	bounded := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, timeout)
	}
	bctx, cancel := bounded()
	key, err := c.Key(bctx)
	cancel()
	if err != nil && c.IsUsage(err) {
		return err
	}
	ch.Line("configuration", "mode "+c.Mode+", state "+c.State, nil)
	if err != nil {
		ch.Line("connector key", "", err)
		return ErrReported
	}
	conn := c.StateKey(key)

	bctx, cancel = bounded()
	note, err := c.checkKey(bctx, key, conn)
	cancel()
	ch.Line("ilert key", note, err)

	bctx, cancel = bounded()
	note, err = c.checkTarget(bctx)
	cancel()
	if err != nil && c.IsUsage(err) {
		return err
	}
	ch.Line("target "+c.Mode, note, err)

	bctx, cancel = bounded()
	note, err = c.checkState(bctx, conn, writable)
	cancel()
	ch.Line("state "+c.State, note, err)

	if ch.Failed {
		return ErrReported
	}
	return nil
}

// checkKey polls once with the stored cursor (read without the lease): a
// poll without HA changes nothing on ilert's side. In HA mode a poll would
// take part in the leader election, so it is skipped.
func (c *Conn) checkKey(ctx context.Context, key, conn string) (string, error) {
	if c.ha() {
		return "skipped: with --cluster-id a poll would take part in the leader election; the first run checks the key", nil
	}
	client, err := poll.NewClient(poll.ClientConfig{BaseURL: c.APIURL, Key: key})
	if err != nil {
		return "", err
	}
	info, _ := c.inspect(ctx, conn)
	return CheckPoll(ctx, client, info.Cursor)
}

// checkTarget builds the target as a run would (MQTT connects here) and asks
// it whether it is reachable; nothing is delivered.
func (c *Conn) checkTarget(ctx context.Context) (string, error) {
	sink, err := c.NewSink(ctx, io.Discard)
	if err != nil {
		return "", err
	}
	defer sink.Close()
	return CheckSink(ctx, sink)
}

// checkState opens the store, reads the connection's state and takes and
// gives back its lease (CheckStore); the cursor is not touched. A store
// that does not exist is not created by a check (a typo'd --state must
// stay visible): a local one is only probed with writable.
func (c *Conn) checkState(ctx context.Context, conn string, writable func(path string) error) (string, error) {
	if path, missing, err := c.storeMissing(); err != nil || missing {
		if err == nil && path != "" {
			err = writable(path)
		}
		return "does not exist yet: the first run creates it and starts from the oldest queued event", err
	}
	store, err := c.OpenStore(ctx)
	if err != nil {
		return "", err
	}
	defer store.Close()
	return CheckStore(ctx, store, conn, c.holder("check"))
}

// CheckPoll polls once after cursor and says how many items wait.
func CheckPoll(ctx context.Context, client *poll.Client, cursor int64) (string, error) {
	b, err := client.Poll(ctx, poll.Query{AfterID: cursor})
	if err != nil {
		return "", err
	}
	waiting := fmt.Sprint(len(b.Items))
	if b.Full {
		waiting += " or more"
	}
	return fmt.Sprintf("accepted; %s items waiting after cursor %d", waiting, cursor), nil
}

// CheckSink asks the target whether it is reachable (poll.Checker), if it
// can say; nothing is delivered.
func CheckSink(ctx context.Context, sink poll.Sink) (string, error) {
	if ch, ok := sink.(poll.Checker); ok {
		return ch.Check(ctx)
	}
	return "", nil
}

// CheckStore reads connection conn's state and takes and gives back its
// lease (as holder: a write); the cursor is not touched. A lease held by a
// run is fine: reading worked, writing is that run's proof.
func CheckStore(ctx context.Context, store poll.Store, conn, holder string) (string, error) {
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
	l, err := store.Acquire(ctx, conn, holder)
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
