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
